"""LoRA adapters: PEFT's init_lora_weights options, on PEFT's own layers (when peft is installed) and by hand.

The laws are PEFT's (``LoraLayer.reset_lora_parameters``, ``orthogonal_init``, ``pissa_init``,
``olora_init``), written here independently; PiSSA and OLoRA are compared with PEFT computing them itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helpers import assert_ks as ks

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

from torch import nn  # noqa: E402

from berry.torch import schemes  # noqa: E402


def peft():
    return pytest.importorskip("peft", reason="PEFT's LoraLayer names and its own PiSSA/OLoRA are the reference")


class Base(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.q_proj = nn.Linear(48, 64)
        self.v_proj = nn.Linear(48, 40)
        self.conv = nn.Conv2d(6, 12, 3, padding=1)
        self.embed = nn.Embedding(30, 48)

    def forward(self, x: torch.Tensor, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.q_proj(x).sum(-1), self.v_proj(x).sum(-1), self.conv(image).flatten(1).sum(-1),
                          self.embed(tokens).sum((-1, -2))])


def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(5, 48, generator=g), torch.randn(5, 6, 8, 8, generator=g), torch.randint(0, 30, (5, 4), generator=g)


def peft_model(r: int = 8, alpha: int = 16, init_lora_weights=False, targets=("q_proj", "v_proj", "conv", "embed"), **kw):
    p = peft()
    config = p.LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=init_lora_weights, **kw)
    return p.get_peft_model(Base(), config)


def sites(model):
    """(A, B) parameters of each PEFT LoRA layer, by the layer's name."""
    out = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            out[name] = (module.lora_A["default"].weight, module.lora_B["default"].weight, module)
    return out


def test_kaiming_default_is_pefts_law_and_the_model_equals_the_base():
    model = peft_model()
    with torch.no_grad():
        base = model.get_base_model()
        with model.disable_adapter():
            before = model(*inputs())
    report = schemes.lora(model, seed=0)
    assert report.preset == "peft"
    for name, (a, b, _) in sites(model).items():
        fan_in = a[0].numel()  # in (Linear) or in * kernel (Conv): the global fan-in of A
        ks(a, stats.uniform(loc=-fan_in**-0.5, scale=2 * fan_in**-0.5).cdf, name)
        assert not b.any(), name
    emb = model.base_model.model.embed
    assert not emb.lora_embedding_A["default"].any()
    ks(emb.lora_embedding_B["default"], stats.norm().cdf, "lora_embedding_B")
    with torch.no_grad():
        assert torch.equal(model(*inputs()), before)  # B = 0 (A = 0 for embeddings): the base model at step 0
    assert base is model.get_base_model()


def test_gaussian_and_orthogonal():
    model = peft_model(r=8, targets=("q_proj", "v_proj"))
    schemes.lora(model, init="gaussian", seed=1)
    for name, (a, b, _) in sites(model).items():
        ks(a, stats.norm(scale=1 / 8).cdf, name)  # std 1/r
        assert not b.any()
    schemes.lora(model, init="orthogonal", seed=1)
    for name, (a, b, _) in sites(model).items():
        product = (b.double() @ a.double()).abs().max()
        assert product < 1e-7 and a.abs().max() > 0 and b.abs().max() > 0, name
        # A = (G_A Q_odd)^T / 10: its rows live in the span of the r/2 odd rows of Q
        assert torch.linalg.matrix_rank(a.double(), rtol=1e-5) == 4 and torch.linalg.matrix_rank(b.double(), rtol=1e-5) == 4
    with pytest.raises(ValueError, match="even rank"):
        schemes.lora(peft_model(r=5, targets=("q_proj",)), init="orthogonal")


@pytest.mark.parametrize("method", ["pissa", "olora"])
@pytest.mark.parametrize("rslora", [False, True])
def test_pissa_and_olora_agree_with_peft(method, rslora):
    ours = peft_model(r=4, alpha=8, targets=("q_proj", "v_proj"), use_rslora=rslora)
    theirs = peft_model(r=4, alpha=8, init_lora_weights=method, targets=("q_proj", "v_proj"), use_rslora=rslora)
    with torch.no_grad():
        with ours.disable_adapter():
            before = ours(*inputs())
    schemes.lora(ours, init=method, seed=0)
    for name, (a, b, module) in sites(ours).items():
        ta, tb, tmodule = sites(theirs)[name]
        s = module.scaling["default"]
        assert s == pytest.approx(8 / (math.sqrt(4) if rslora else 4))
        # the factors up to the signs of singular vectors: B A and the residual base weight are sign-free
        assert torch.allclose(b.double() @ a.double(), tb.double() @ ta.double(), atol=1e-5)
        assert torch.allclose(module.base_layer.weight, tmodule.base_layer.weight, atol=1e-5)
        assert torch.allclose(a.double().abs(), ta.double().abs(), atol=1e-4), name
    with torch.no_grad():
        assert torch.allclose(ours(*inputs()), before, atol=1e-4)  # W_res + s B A = W


@pytest.mark.parametrize("method", [True, "pissa"])
def test_dora_magnitudes_are_the_norms_of_the_adapted_weight(method):
    # PEFT sets DoRA's magnitude to the norm of W + s B A when it initializes A and B; berry's A and B leave
    # W + s B A = W (B = 0, or the residual), so the magnitude is the norm of the base weight, per output
    targets = ("q_proj", "v_proj", "conv", "embed") if method is True else ("q_proj", "v_proj")
    ours = peft_model(r=4, alpha=8, targets=targets, use_dora=True)  # init_lora_weights=False: random A, B
    theirs = peft_model(r=4, alpha=8, targets=targets, use_dora=True, init_lora_weights=method)
    with torch.no_grad():
        with ours.disable_adapter():
            before = ours(*inputs())
    report = schemes.lora(ours, init=method, seed=0)
    magnitudes = {n: p for n, p in ours.named_parameters() if "lora_magnitude_vector" in n}
    assert len(magnitudes) == len(targets)
    expected = dict(theirs.named_parameters())
    for name, magnitude in magnitudes.items():
        assert report.roles[name] == "magnitude"
        assert torch.allclose(magnitude, expected[name], atol=1e-5), name
    with torch.no_grad():
        assert torch.allclose(ours(*inputs()), before, atol=1e-4)


def test_pissa_on_a_conv_base_and_an_explicit_scaling():
    layer = nn.Module()
    layer.conv = nn.Conv2d(4, 8, 3)
    layer.lora_A = nn.Parameter(torch.empty(3, 4, 3, 3))
    layer.lora_B = nn.Parameter(torch.empty(8, 3, 1, 1))
    original = layer.conv.weight.detach().clone()
    with pytest.raises(ValueError, match="scaling"):
        schemes.lora(layer, init="pissa", base="conv.weight")
    report = schemes.lora(layer, init="pissa", scaling=0.5, base="conv.weight")
    assert report.roles["conv.weight"] == "base (residual)"
    delta = (layer.lora_B.detach().flatten(1) @ layer.lora_A.detach().flatten(1)).reshape(original.shape)
    assert torch.allclose(layer.conv.weight.detach() + 0.5 * delta, original, atol=1e-6)
    singular = torch.linalg.svdvals(original.flatten(1).double())
    assert torch.allclose(torch.linalg.svdvals(0.5 * delta.flatten(1).double())[:3], singular[:3], rtol=1e-5)


def test_a_hand_written_adapter_and_the_global_fan_in():
    class Adapted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = nn.Linear(256, 64)
            self.lora_A = nn.Parameter(torch.empty(16, 256))
            self.lora_B = nn.Parameter(torch.empty(64, 16))

    model = nn.Sequential(Adapted(), nn.ReLU(), Adapted())
    kept = model[0].base.weight.detach().clone()
    report = schemes.lora(model, seed=3)
    assert report.preset == "loralib"
    assert report.init["0.lora_A"].init == "uniform(-0.0625, 0.0625)"
    ks(model[2].lora_A, stats.uniform(loc=-1 / 16, scale=2 / 16).cdf, "lora_A")
    assert torch.equal(model[0].base.weight, kept)  # the base model is not touched
    assert not torch.equal(model[0].lora_A, model[2].lora_A)  # keyed by name


def test_loralib_embedding_adapter():
    emb = nn.Embedding(40, 16)
    emb.lora_A = nn.Parameter(torch.empty(4, 40))
    emb.lora_B = nn.Parameter(torch.empty(16, 4))
    report = schemes.lora(emb, seed=0)
    assert report.roles == {"lora_A": "embedding_A", "lora_B": "embedding_B"}
    assert not emb.lora_A.any()
    ks(emb.lora_B, stats.norm().cdf, "B ~ N(0, 1)")


def test_lora_factors_formulas():
    w = np.random.default_rng(0).normal(size=(6, 9))
    a, b, res = schemes.lora_factors(w, 2, "pissa", scaling=2.0)
    u, s, vh = np.linalg.svd(w, full_matrices=False)
    assert np.allclose(2.0 * b @ a, u[:, :2] * s[:2] @ vh[:2])  # the top-2 SVD part
    assert np.allclose(res + 2.0 * b @ a, w)
    a, b, res = schemes.lora_factors(w, 3, "olora", scaling=1.5)
    q, r = np.linalg.qr(w)
    assert np.allclose(b, q[:, :3]) and np.allclose(a, r[:3]) and np.allclose(res, w - 1.5 * b @ a)
    with pytest.raises(ValueError, match="rank"):
        schemes.lora_factors(w, 7, "pissa")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [({"init": "loftq"}, ValueError, "init"), ({"init": False}, ValueError, "init=False"),
     ({"scaling": -1.0}, ValueError, "scaling"), ({"preset": "unsloth"}, ValueError, "preset")],
)
def test_bad_arguments(kwargs, error, match):
    layer = nn.Linear(4, 4)
    layer.lora_A, layer.lora_B = nn.Parameter(torch.empty(2, 4)), nn.Parameter(torch.empty(4, 2))
    with pytest.raises(error, match=match):
        schemes.lora(layer, **kwargs)


def test_no_adapter_is_a_preset_error():
    with pytest.raises(schemes.PresetError, match="lora_A"):
        schemes.lora(nn.Linear(3, 3))


def test_meta_models_are_left_alone():
    with torch.device("meta"):
        layer = nn.Module()
        layer.base = nn.Linear(8, 8)
        layer.lora_A, layer.lora_B = nn.Parameter(torch.empty(2, 8)), nn.Parameter(torch.empty(8, 2))
    report = schemes.lora(layer, init="pissa", scaling=1.0)
    assert report.roles["base.weight"] == "base (residual)" and layer.lora_A.is_meta

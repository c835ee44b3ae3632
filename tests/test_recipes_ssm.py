"""Mamba-1, Mamba-2 and S4D: every parameter against mamba_ssm's / transformers' / the S4D paper's formulas.

The formulas are written here from the reference code (mamba_ssm ``Mamba.__init__``, ``Mamba2.__init__``,
``mixer_seq_simple._init_weights``; transformers ``MambaPreTrainedModel._init_weights``; state-spaces/s4
``s4d.py`` and ``dplr.py``), independently of berry's implementation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helpers import assert_ks as ks

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

from torch import nn  # noqa: E402

from berry.torch import init_model, schemes  # noqa: E402


def uniform_cdf(bound: float):
    return stats.uniform(loc=-bound, scale=2 * bound).cdf


class Mixer(nn.Module):
    """mamba_ssm's Mamba (version 1) or Mamba2 parameter names and shapes, without the kernels."""

    def __init__(self, d_model: int, d_state: int, version: int, *, headdim: int = 8, conv_bias: bool = True) -> None:
        super().__init__()
        d_inner = 2 * d_model
        if version == 1:
            dt_rank = math.ceil(d_model / 16)
            self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
            self.conv1d = nn.Conv1d(d_inner, d_inner, 4, groups=d_inner, padding=3, bias=conv_bias)
            self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
            self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
            self.A_log = nn.Parameter(torch.empty(d_inner, d_state))
            self.D = nn.Parameter(torch.empty(d_inner))
        else:
            heads = d_inner // headdim
            conv_dim = d_inner + 2 * d_state
            self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * d_state + heads, bias=False)
            self.conv1d = nn.Conv1d(conv_dim, conv_dim, 4, groups=conv_dim, padding=3, bias=conv_bias)
            self.dt_bias = nn.Parameter(torch.empty(heads))
            self.A_log = nn.Parameter(torch.empty(heads))
            self.D = nn.Parameter(torch.empty(heads))
            self.norm = nn.RMSNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)


class Block(nn.Module):
    def __init__(self, d_model: int, d_state: int, version: int, **kwargs) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.mixer = Mixer(d_model, d_state, version, **kwargs)


class MambaLM(nn.Module):
    """mamba_ssm's MambaLMHeadModel names: backbone.embedding, backbone.layers.i.{norm,mixer}, backbone.norm_f."""

    def __init__(self, d_model: int = 32, n_layer: int = 3, d_state: int = 16, version: int = 1, **kwargs) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.embedding = nn.Embedding(50, d_model)
        self.backbone.layers = nn.ModuleList(Block(d_model, d_state, version, **kwargs) for _ in range(n_layer))
        self.backbone.norm_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, 50, bias=False)
        self.lm_head.weight = self.backbone.embedding.weight  # tied, as mamba_ssm does


def check_a_log(a_log, d_state):
    """Mamba-1's ``A_log``: ``log(1 .. d_state)`` on every row, correctly rounded to float32.

    mamba_ssm computes ``torch.log`` in float32, which is not correctly rounded and whose SIMD
    path depends on the CPU (an AVX2 machine differs from an AVX-512 one in the last bit); berry
    rounds the float64 logarithm once, so its values are the same everywhere and within one
    float32 ulp of ``torch.log`` on any machine.
    """
    exact = torch.from_numpy(np.log(np.arange(1, d_state + 1, dtype=np.float64)).astype(np.float32))
    values = a_log.detach()
    assert torch.equal(values, exact.expand_as(values))
    ulp = torch.finfo(torch.float32).eps * exact.abs().clamp(min=torch.finfo(torch.float32).tiny)
    assert ((torch.log(torch.arange(1, d_state + 1.0)) - exact).abs() <= ulp).all()


def check_dt_bias(bias: torch.Tensor, dt_min=0.001, dt_max=0.1, where="dt_bias") -> None:
    dt = torch.nn.functional.softplus(bias.detach().double())
    assert dt.min() >= dt_min * (1 - 1e-6) and dt.max() <= dt_max * (1 + 1e-6), where
    # log dt is uniform on [log dt_min, log dt_max] (the floor 1e-4 is below dt_min)
    ks(dt.log(), stats.uniform(loc=math.log(dt_min), scale=math.log(dt_max) - math.log(dt_min)).cdf, where)


@pytest.mark.parametrize("rescale", [True, False])
def test_mamba1_reference_laws(rescale):
    model = MambaLM(d_model=64, n_layer=3, d_state=16, version=1)
    report = schemes.mamba(model, seed=0, rescale_prenorm_residual=rescale)
    assert report.preset == "mamba" and report.constants["mamba_version"] == 1.0
    for i, block in enumerate(model.backbone.layers):
        m = block.mixer
        check_dt_bias(m.dt_proj.bias, where=f"layer {i}")
        check_a_log(m.A_log, 16)
        assert (m.D.detach() == 1).all()
        ks(m.dt_proj.weight, uniform_cdf(4**-0.5), "dt_proj.weight")  # dt_rank = ceil(64/16) = 4
        ks(m.in_proj.weight, uniform_cdf(1 / math.sqrt(64)), "in_proj")
        ks(m.x_proj.weight, uniform_cdf(1 / math.sqrt(128)), "x_proj")
        ks(m.conv1d.weight, uniform_cdf(1 / math.sqrt(4)), "conv1d.weight")  # fan_in = 1 * d_conv
        ks(m.conv1d.bias, uniform_cdf(1 / math.sqrt(4)), "conv1d.bias")  # torch's default, kept by mamba_ssm
        divisor = math.sqrt(3) if rescale else 1.0  # sqrt(n_residuals_per_layer * n_layer)
        ks(m.out_proj.weight, uniform_cdf(1 / math.sqrt(128) / divisor), "out_proj")
        assert (block.norm.weight == 1).all() and not block.norm.bias.any()
        for p in (m.dt_proj.bias, m.A_log, m.D):
            assert p._no_reinit and p._no_weight_decay
    ks(model.backbone.embedding.weight, stats.norm(scale=0.02).cdf, "embedding")


def test_mamba2_reference_laws():
    model = MambaLM(d_model=64, n_layer=2, d_state=8, version=2, headdim=2)  # 64 heads, for the KS test of A
    report = schemes.mamba(model, seed=1)
    assert report.constants["mamba_version"] == 2.0
    a = torch.cat([block.mixer.A_log.detach().exp() for block in model.backbone.layers])
    ks(a, stats.uniform(loc=1, scale=15).cdf, "exp(A_log) ~ U(1, 16)")
    for block in model.backbone.layers:
        check_dt_bias(block.mixer.dt_bias)
        assert (block.mixer.D == 1).all() and (block.mixer.norm.weight == 1).all()
    schemes.mamba(model, seed=1, conv_init=0.3, a_init_range=(2, 4), dt_min=0.01, dt_max=0.02)
    mixer = model.backbone.layers[0].mixer
    ks(mixer.conv1d.weight, uniform_cdf(0.3), "conv_init")
    assert mixer.A_log.exp().min() >= 2 and mixer.A_log.exp().max() <= 4
    check_dt_bias(mixer.dt_bias, 0.01, 0.02)


def test_dt_bias_is_mamba_ssm_formula_of_the_keyed_uniforms():
    model = MambaLM(version=1, n_layer=1)
    schemes.mamba(model, seed=7, dt_min=1e-5, dt_max=1e-3, dt_init_floor=1e-4)
    name = "backbone.layers.0.mixer.dt_proj.bias"
    import berry

    u = torch.from_numpy(berry.sample((64,), distribution="uniform", low=0.0, high=1.0, seed=7, name=name, dtype="float64"))
    # mamba_ssm, written as it is there
    dt = torch.exp(u * (math.log(1e-3) - math.log(1e-5)) + math.log(1e-5)).clamp(min=1e-4)
    inv_dt = dt + torch.log(-torch.expm1(-dt))
    assert torch.allclose(model.get_parameter(name).double(), inv_dt, rtol=1e-6, atol=0)
    assert (torch.nn.functional.softplus(model.get_parameter(name).double()) >= 1e-4 * (1 - 1e-6)).all()


def test_dt_init_constant_and_scale():
    model = MambaLM(version=1, n_layer=1)
    schemes.mamba(model, seed=0, dt_init="constant", dt_scale=2.0)
    weight = model.backbone.layers[0].mixer.dt_proj.weight
    assert torch.allclose(weight, torch.full_like(weight, 2.0 * 2**-0.5))  # dt_rank = ceil(32 / 16) = 2


def test_no_reinit_survives_a_whole_model_init():
    model = MambaLM(version=1)
    schemes.mamba(model, seed=0)
    kept = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith(("dt_proj.bias", "A_log", ".D"))}
    report = init_model(model, {}, seed=99)
    for name, value in kept.items():
        assert torch.equal(model.get_parameter(name), value), name
        assert report[name].rule == "_no_reinit" and report[name].init == "kept"
    check_dt_bias(model.backbone.layers[0].mixer.dt_proj.bias)
    with pytest.warns(UserWarning, match="mixer.D"):  # the old behaviour: the bias is zeroed, dt = softplus(0)
        init_model(model, {}, seed=99, respect_no_reinit=False)
    assert not model.backbone.layers[0].mixer.dt_proj.bias.any()


def test_mamba_scheme_is_keyed_and_idempotent():
    a, b = MambaLM(version=2), MambaLM(version=2)
    schemes.mamba(a, seed=4)
    schemes.mamba(b, seed=4)
    schemes.mamba(b, seed=4)  # overwrites its own _no_reinit parameters
    for (name, x), (_, y) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(x, y), name


def _hf():
    return pytest.importorskip("transformers", reason="the Hugging Face Mamba presets are tried on transformers' classes")


@pytest.mark.parametrize("convention", ["mamba_ssm", "transformers"])
def test_hugging_face_mamba(convention):
    transformers = _hf()
    config = transformers.MambaConfig(vocab_size=64, hidden_size=64, state_size=16, num_hidden_layers=2,
                                      time_step_min=0.002, time_step_max=0.05)
    model = transformers.MambaForCausalLM(config)
    report = schemes.mamba(model, seed=0, convention=convention)
    assert report.preset == "mamba"
    mixer = model.backbone.layers[1].mixer
    if convention == "transformers":  # MambaPreTrainedModel._init_weights, and the config's time steps
        check_dt_bias(mixer.dt_proj.bias, 0.002, 0.05)
        ks(mixer.in_proj.weight, stats.norm(scale=0.1).cdf, "in_proj")
        ks(mixer.x_proj.weight, stats.norm(scale=0.1).cdf, "x_proj")
        assert not mixer.conv1d.bias.any()
        ks(mixer.out_proj.weight, uniform_cdf(1 / math.sqrt(128)), "out_proj (rescale off)")
        ks(model.backbone.embeddings.weight, stats.norm(scale=0.1).cdf, "embeddings")
    else:
        check_dt_bias(mixer.dt_proj.bias)
        ks(mixer.in_proj.weight, uniform_cdf(1 / 8), "in_proj")
        ks(mixer.out_proj.weight, uniform_cdf(1 / math.sqrt(128) / math.sqrt(2)), "out_proj")
    check_a_log(mixer.A_log, 16)
    assert (mixer.D == 1).all() and (model.backbone.norm_f.weight == 1).all()
    with torch.no_grad():
        assert torch.isfinite(model(torch.zeros(1, 6, dtype=torch.long)).logits).all()


def test_hugging_face_mamba2():
    transformers = _hf()
    config = transformers.Mamba2Config(vocab_size=64, hidden_size=32, state_size=8, num_hidden_layers=2, num_heads=8,
                                       head_dim=8, n_groups=1, expand=2)
    model = transformers.Mamba2ForCausalLM(config)
    schemes.mamba(model, seed=0, convention="transformers")
    mixer = model.backbone.layers[0].mixer
    assert torch.allclose(mixer.A_log.exp(), torch.arange(1, 9.0))  # transformers' Mamba-2: log(1 .. n_heads)
    check_dt_bias(mixer.dt_bias)
    ks(model.lm_head.weight, stats.norm(scale=0.1).cdf, "untied lm_head")
    schemes.mamba(model, seed=0)  # mamba_ssm's: log U(1, 16)
    a = mixer.A_log.exp()
    assert ((a >= 1) & (a <= 16)).all() and not torch.allclose(a, torch.arange(1, 9.0))


# ----------------------------------------------------------------------------- S4D
class S4DKernel(nn.Module):
    def __init__(self, h: int, n: int) -> None:
        super().__init__()
        self.log_dt = nn.Parameter(torch.empty(h))
        self.C = nn.Parameter(torch.empty(h, n // 2, 2))
        self.log_A_real = nn.Parameter(torch.empty(h, n // 2))
        self.A_imag = nn.Parameter(torch.empty(h, n // 2))


class S4D(nn.Module):
    def __init__(self, h: int = 64, n: int = 32) -> None:
        super().__init__()
        self.D = nn.Parameter(torch.empty(h))
        self.kernel = S4DKernel(h, n)


@pytest.mark.parametrize("kind", ["lin", "inv", "real"])
def test_s4d_laws(kind):
    layer = S4D(h=64, n=32)
    schemes.s4d(layer, kind=kind, seed=0)
    n = torch.arange(16.0, dtype=torch.float64)
    if kind == "lin":  # A_n = -1/2 + i pi n
        real, imag = torch.full((16,), 0.5, dtype=torch.float64), math.pi * n
    elif kind == "inv":  # A_n = -1/2 + i N/pi (N/(2n+1) - 1)
        real, imag = torch.full((16,), 0.5, dtype=torch.float64), 32 / math.pi * (32 / (2 * n + 1) - 1)
    else:  # A_n = -(n+1)
        real, imag = n + 1, torch.zeros(16, dtype=torch.float64)
    k = layer.kernel
    assert torch.allclose(k.log_A_real.double().exp(), real.expand(64, 16), rtol=1e-6)
    assert torch.allclose(k.A_imag.double(), imag.expand(64, 16), rtol=1e-6, atol=1e-6)
    ks(k.C, stats.norm(scale=math.sqrt(0.5)).cdf, "C (complex standard normal)")
    ks(layer.D, stats.norm().cdf, "D")
    ks(k.log_dt, stats.uniform(loc=math.log(0.001), scale=math.log(100)).cdf, "log_dt")
    assert k.A_imag._no_reinit and k.log_dt._no_reinit


def test_s4d_diagonal_matches_the_paper():
    assert np.allclose(schemes.s4d_diagonal(8, "lin"), -0.5 + 1j * np.pi * np.arange(4))
    assert np.allclose(schemes.s4d_diagonal(8, "inv").imag, 8 / np.pi * (8 / (2 * np.arange(4) + 1) - 1))
    assert np.allclose(schemes.s4d_diagonal(8, "real"), -(np.arange(4) + 1))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dt_min": 0.2, "dt_max": 0.1}, ValueError, "dt_min"),
        ({"dt_init": "gaussian"}, ValueError, "dt_init"),
        ({"convention": "hf"}, ValueError, "convention"),
        ({"a_init_range": (16, 1)}, ValueError, "a_init_range"),
        ({"preset": "mamba_ssm"}, ValueError, "preset"),
    ],
)
def test_mamba_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        schemes.mamba(MambaLM(), **kwargs)


def test_mamba_on_a_model_without_a_mixer():
    with pytest.raises(schemes.PresetError, match="a_log"):
        schemes.mamba(nn.Sequential(nn.Linear(3, 3)))

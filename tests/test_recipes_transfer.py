"""CompleteP (Dey et al. 2025, Table 1) and the spectral condition (Yang, Simon & Bernstein 2023)."""

from __future__ import annotations

import math

import pytest
from _helpers import assert_ks

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

from torch import nn  # noqa: E402

from berry.torch import schemes  # noqa: E402
from berry.torch.models import Transformer  # noqa: E402


def ks(values: torch.Tensor, std: float, where: str) -> None:
    assert_ks(values, stats.norm(scale=std), where)


@pytest.mark.parametrize(("depth", "width", "alpha"), [(8, 64, 1.0), (4, 128, 0.5), (2, 32, 1.0)])
def test_completep_table(depth, width, alpha):
    model = Transformer(n_layer=depth, n_embd=width, n_head=4, vocab_size=64, block_size=16)
    report = schemes.completep(model, base_depth=2, base_width=32, alpha=alpha, init_std=0.02, seed=0)
    m_l, m_n = depth / 2, width / 32
    assert report.constants["residual_multiplier"] == pytest.approx(m_l**-alpha)
    assert report.constants["output_multiplier"] == pytest.approx(1 / m_n)
    p = report.parameters
    hidden = p["transformer.h.0.attn.c_attn.weight"]
    assert hidden.role == "hidden weight"
    assert hidden.lr_mult == pytest.approx(m_l ** (alpha - 1) / m_n)
    assert hidden.eps_mult == pytest.approx(m_l**-alpha / m_n)
    assert hidden.weight_decay_mult == pytest.approx(m_n)
    norm = p["transformer.h.0.ln_1.weight"]
    assert (norm.role, norm.lr_mult, norm.weight_decay_mult) == ("hidden vector", pytest.approx(m_l ** (alpha - 1)), 0.0)
    assert p["transformer.wte.weight"].lr_mult == 1 and p["transformer.wte.weight"].eps_mult == pytest.approx(1 / m_n)
    assert p["transformer.ln_f.weight"].role == "outer vector" and p["lm_head.weight"].role == "readout"
    for i in range(depth):
        ks(model.get_parameter(f"transformer.h.{i}.mlp.c_proj.weight"), 0.02 / math.sqrt(m_n), f"block {i}")
    ks(model.transformer.wte.weight, 0.02, "wte")
    groups = report.param_groups(model, 1e-3, weight_decay=0.1, eps=1e-8)
    hidden_group = next(g for g in groups if any(q is model.blocks[0].attn.c_attn.weight for q in g["params"]))
    assert hidden_group["lr"] == pytest.approx(1e-3 * m_l ** (alpha - 1) / m_n)
    assert hidden_group["weight_decay"] == pytest.approx(0.1 * m_n)
    assert hidden_group["eps"] == pytest.approx(1e-8 * m_l**-alpha / m_n)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    torch.optim.AdamW(groups)  # a valid optimizer


def test_completep_at_the_base_shape_is_the_standard_parametrization():
    model = Transformer(n_layer=4, n_embd=32, n_head=4)
    report = schemes.completep(model, base_depth=4, base_width=32)
    assert all(p.lr_mult == 1 and p.eps_mult == 1 for p in report.parameters.values())
    assert report.constants["residual_multiplier"] == 1


def test_completep_bad_arguments():
    model = Transformer(n_layer=2, n_embd=32, n_head=4)
    with pytest.raises(ValueError, match="base_depth"):
        schemes.completep(model, base_depth=0)
    with pytest.raises(ValueError, match="alpha"):
        schemes.completep(model, base_depth=1, alpha=-1.0)
    with pytest.raises(schemes.PresetError, match="blocks"):
        schemes.completep(nn.Linear(3, 3), base_depth=1)


def mlp(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(20, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 5))


@pytest.mark.parametrize("width", [32, 200])
def test_spectral_orthogonal_norms_are_exact(width):
    model = mlp(width)
    report = schemes.spectral(model, seed=0)
    for index, (fan_in, fan_out) in {0: (20, width), 2: (width, width), 4: (width, 5)}.items():
        w = model[index].weight.detach().double()
        singular = torch.linalg.svdvals(w)
        assert torch.allclose(singular, torch.full_like(singular, math.sqrt(fan_out / fan_in)), rtol=1e-5)
        entry = report.parameters[f"{index}.weight"]
        assert entry.sgd_lr_mult == pytest.approx(fan_out / fan_in) and entry.adam_lr_mult == pytest.approx(1 / fan_in)
        assert not model[index].bias.any()
        assert report.parameters[f"{index}.bias"].sgd_lr_mult == fan_out


def test_spectral_normal_std_and_spectral_norm_scale():
    model = mlp(400)
    schemes.spectral(model, distribution="normal", seed=1)
    ks(model[0].weight, 1 / math.sqrt(20), "expanding layer: 1/sqrt(fan_in)")
    ks(model[4].weight, math.sqrt(5) / 400, "contracting layer: sqrt(fan_out)/fan_in")
    for index, (fan_in, fan_out) in {2: (400, 400), 4: (400, 5)}.items():
        norm = torch.linalg.matrix_norm(model[index].weight.detach().double(), 2)
        assert 0.5 < norm / math.sqrt(fan_out / fan_in) < 3  # Theta(sqrt(fan_out/fan_in))


def test_spectral_relative_learning_rates_against_a_base():
    with torch.device("meta"):
        base = mlp(32)
    model = mlp(128)
    report = schemes.spectral(model, base=base, seed=0)
    assert report.parameters["2.weight"].adam_lr_mult == pytest.approx(32 / 128)
    assert report.parameters["0.weight"].adam_lr_mult == 1  # input layer: fan_in unchanged
    assert report.parameters["4.weight"].sgd_lr_mult == pytest.approx(32 / 128)
    groups = report.param_groups(model, 0.1, "sgd")
    assert sorted(g["lr"] for g in groups) == pytest.approx(sorted({0.1 * m for m in (1.0, 4.0, 0.25)}))
    with pytest.raises(schemes.PresetError, match="base"):
        schemes.spectral(model, base={"0.weight": (32, 20)})


def test_spectral_conv_and_embedding():
    model = nn.Sequential(nn.Embedding(100, 16), nn.Conv1d(16, 32, 3))
    report = schemes.spectral(model, seed=0)
    conv = model[1].weight.detach().double().flatten(1)
    singular = torch.linalg.svdvals(conv)
    assert torch.allclose(singular, torch.full_like(singular, math.sqrt(32 / 48)), rtol=1e-5)
    ks(model[0].weight, 1.0, "embedding (one-hot inputs, fan_in 1)")
    assert report.parameters["0.weight"].fan_in == 1


def test_spectral_std_formula():
    assert schemes.spectral_std(100, 400) == pytest.approx(0.1)
    assert schemes.spectral_std(400, 100, scale=2.0) == pytest.approx(2.0 / 20 * 0.5)
    with pytest.raises(ValueError, match="fan_in"):
        schemes.spectral_std(0, 4)


def test_other_vectors_are_left_to_the_rules():
    model = mlp(16)
    model.register_parameter("gate", nn.Parameter(torch.full((16,), 0.5)))
    report = schemes.spectral(model, seed=0, rules={"gate": "keep"})
    assert "gate" not in report.parameters and (model.gate == 0.5).all()

"""init_model(model) without rules follows the architecture; explicit rules keep the structural defaults, bit for bit.

Signals are measured here with plain forward hooks (not with berry's probe), on fixed seeds.
"""

from __future__ import annotations

import hashlib
import math
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from berry.torch import auto_init, init_model  # noqa: E402
from berry.torch.auto import zoo  # noqa: E402


def mlp(activation: type[nn.Module], depth: int = 50, width: int = 256) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), activation()]
    return nn.Sequential(*layers)


def linear_output_stds(model: nn.Module, x: torch.Tensor) -> list[float]:
    """The std of every Linear's output on ``x``, with forward hooks."""
    stds: list[float] = []
    handles = [m.register_forward_hook(lambda _m, _i, out: stds.append(float(out.std())))
               for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return stds


def standard_input(width: int = 256) -> torch.Tensor:
    return torch.randn(1024, width, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh, nn.GELU])
def test_a_deep_mlp_keeps_its_signal_by_default(activation):
    x = standard_input()
    model = mlp(activation)
    report = init_model(model, seed=0)
    assert report.defaults == "architecture" and "(2, 256) standardized" in report.defaults_note
    assert report["0.weight"].rule == "auto weight"
    stds = linear_output_stds(model, x)
    ratios = [s / float(x.std()) for s in stds]
    assert len(ratios) == 50 and all(0.5 <= r <= 2.0 for r in ratios), (min(ratios), max(ratios))

    old = mlp(activation)
    init_model(old, {}, seed=0)  # the structural defaults (Xavier everywhere): the signal leaves the band
    old_last = linear_output_stds(old, x)[-1] / float(x.std())
    assert not 0.5 <= old_last <= 2.0, old_last


def gpt_loss(model: nn.Module, tokens: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(tokens)
    vocab = logits.shape[-1]
    return float(F.cross_entropy(logits[:, :-1].reshape(-1, vocab), tokens[:, 1:].reshape(-1)))


def test_a_tied_language_model_starts_at_log_vocabulary():
    model, (tokens,) = zoo.build("gpt", seed=0)
    report = init_model(model, seed=0)
    assert report.defaults == "architecture" and "Embedding of 1000" in report.defaults_note
    assert model.transformer["wte"].weight is model.lm_head.weight  # the tie is kept, initialized once
    assert [p.name for p in report].count("transformer.wte.weight") == 1 and "lm_head.weight" not in {
        p.name for p in report}
    assert abs(gpt_loss(model, tokens) - math.log(1000)) < 0.2

    old, _ = zoo.build("gpt", seed=0)
    init_model(old, {}, seed=0)
    assert gpt_loss(old, tokens) > math.log(1000) + 5  # what the structural defaults gave


def test_defaults_are_auto_init_with_the_inferred_input_and_deterministic():
    planned, _ = zoo.build("gpt", seed=0)
    again, _ = zoo.build("gpt", seed=1)  # other torch values before: nothing of them survives
    reference, _ = zoo.build("gpt", seed=2)
    init_model(planned, seed=7)
    init_model(again, seed=7)
    auto = auto_init(reference, seed=7)
    assert auto.inputs.startswith("no example input")
    for (name, a), b, c in zip(planned.named_parameters(), again.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b) and torch.equal(a, c), name
    other, _ = zoo.build("gpt", seed=0)
    init_model(other, seed=8)
    assert not torch.equal(other.lm_head.weight, planned.lm_head.weight)


def test_a_meta_model_materialized_with_to_empty_gets_the_same_defaults():
    eager = mlp(nn.ReLU, depth=6, width=32)
    init_model(eager, seed=3)
    with torch.device("meta"):
        meta = mlp(nn.ReLU, depth=6, width=32)
    meta.to_empty(device="cpu")
    report = init_model(meta, seed=3)
    assert report.defaults == "architecture"
    for (name, a), b in zip(eager.named_parameters(), meta.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_prefix_keys_the_planned_rules_under_the_larger_model():
    from berry.torch.auto import auto_plan

    def part() -> nn.Sequential:
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    prefixed = part()
    report = init_model(prefixed, seed=2, prefix="blocks.1")
    assert report.defaults == "architecture" and report[("blocks.1.0.weight")].rule == "auto weight"
    reference = part()
    init_model(reference, {f"blocks.1.{k}": v for k, v in auto_plan(part()).rules.items()}, seed=2, prefix="blocks.1")
    plain = part()
    init_model(plain, seed=2)
    for a, b, c in zip(prefixed.parameters(), reference.parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b) and (c.ndim < 2 or not torch.equal(a, c))  # keyed by the prefixed name


def test_explicit_rules_win_and_the_no_reinit_marker_holds():
    model = mlp(nn.ReLU, depth=3, width=16)
    report = init_model(model, {"2.weight": {"std": 0.5}}, seed=0)
    assert report.defaults == "structural" and report.defaults_note == ""
    assert report["0.weight"].rule == "default Linear:weight" and report["2.weight"].rule == "2.weight"
    marked = mlp(nn.ReLU, depth=3, width=16)
    marked[2].weight._no_reinit = True
    before = marked[2].weight.detach().clone()
    report = init_model(marked, seed=0)
    assert report.defaults == "architecture" and report["2.weight"].rule == "_no_reinit"
    assert torch.equal(marked[2].weight, before)


def digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().to(torch.float32).contiguous().numpy().tobytes())
    for name, b in model.named_buffers():
        h.update(name.encode())
        h.update(b.detach().to(torch.float64).contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def mixed_layers() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 4), nn.LSTM(4, 6),
                         nn.Embedding(10, 4, padding_idx=0), nn.LayerNorm(4), nn.MultiheadAttention(4, 2))


#: Digests of init_model with these rules before it planned defaults (berry 468db77, the structural defaults).
GOLDEN = {
    "{}": "cb96b64ee60707868a01b4e0b8eb49eb",
    "[]": "cb96b64ee60707868a01b4e0b8eb49eb",
    "partial": "9af42962dd0d2ca6a33365fa4625cee9",
}


@pytest.mark.parametrize("label, rules", [
    ("{}", {}), ("[]", []), ("partial", {"*.bias": 0.1, "2.weight": "he", "LSTM:weight_hh_l0": {"std": 0.5}}),
])
def test_explicit_rules_give_the_old_values_bit_for_bit(label, rules):
    model = mixed_layers()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # explicit rules: no plan, no fallback warning
        report = init_model(model, rules, seed=4)
    assert digest(model) == GOLDEN[label] and report.defaults == "structural"
    gpt, _ = zoo.build("gpt", seed=0)
    init_model(gpt, {}, seed=1)
    assert digest(gpt) == "6c8d4413986df2f36a9982f23c8d7796"


def test_no_plan_falls_back_to_the_structural_defaults_and_says_why():
    model, _ = zoo.build("control_flow", seed=0)  # branches on the data: cannot be recorded on meta tensors
    with pytest.warns(UserWarning, match=r"no architecture plan for ControlFlow: .*depends on tensor values"):
        report = init_model(model, seed=0)
    assert report.defaults == "structural" and report.defaults_note.startswith("fallback: ")
    assert "depends on tensor values" in report.table() and report.to_dict()["defaults"] == "structural"
    explicit, _ = zoo.build("control_flow", seed=0)
    init_model(explicit, {}, seed=0)
    assert digest(model) == digest(explicit)

    class TakesTwo(nn.Module):  # its first layer says (2, 4); its forward wants two inputs
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x, y):
            return self.a(x) + self.b(y)

    with pytest.warns(UserWarning, match=r"could not be recorded on the inferred input \(TypeError"):
        report = init_model(TakesTwo())
    assert "TypeError" in report.defaults_note

    class Scale(nn.Module):  # no layer to infer an input from
        def __init__(self):
            super().__init__()
            self.gamma = nn.Parameter(torch.empty(4))

        def forward(self, x):
            return x * self.gamma

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = init_model(Scale())
    messages = [str(w.message) for w in caught]
    assert any("no input could be inferred" in m for m in messages) and any("['gamma']" in m for m in messages)
    assert report.defaults == "structural" and report["gamma"].init == "ones"


def test_verbose_prints_the_default_path(capsys):
    init_model(mlp(nn.Tanh, depth=2, width=8), seed=0, verbose=True)
    assert "defaults: architecture: architecture plan" in capsys.readouterr().out


def test_the_planner_s_residual_constants_are_the_schemes():
    from berry.torch import schemes
    from berry.torch.auto import auto_plan

    model, (x,) = zoo.build("transformer_post_ln", seed=0)
    for residual, constant in (("deepnorm", schemes.deepnorm_constants("encoder", encoder_layers=6).encoder_beta),
                               ("t-fixup", schemes.t_fixup_scales("encoder", encoder_layers=6).encoder)):
        reasons = " ".join(row.reason for row in auto_plan(model, x, residual=residual))
        assert f"= {constant:.4g} on value and output" in reasons, residual
    for layers in (1, 6, 24):
        beta = schemes.deepnorm_constants("encoder", encoder_layers=layers).encoder_beta
        scale = schemes.t_fixup_scales("encoder", encoder_layers=layers).encoder
        assert beta == pytest.approx((8 * layers) ** -0.25, rel=1e-15)
        assert scale == pytest.approx(0.67 * layers**-0.25, rel=1e-15)

"""Whole-model initialization: rules, per-layer fans, keys by qualified name, meta materialization."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import nn  # noqa: E402

import berry  # noqa: E402
import berry.torch as binit  # noqa: E402
from berry.torch import Rule, UnmatchedRuleError, init_model  # noqa: E402


class TinyGPT(nn.Module):
    def __init__(self, vocab=50, d=32, heads=4, layers=2):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "ln_1": nn.LayerNorm(d),
                    "attn": nn.MultiheadAttention(d, heads, batch_first=True),
                    "ln_2": nn.LayerNorm(d),
                    "c_fc": nn.Linear(d, 4 * d),
                    "c_proj": nn.Linear(4 * d, d),
                }
            )
            for _ in range(layers)
        )
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as in GPT-2


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, groups=8, padding=1)
        self.grouped = nn.Conv1d(8, 12, 5, groups=4)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2, groups=2)
        self.conv3d = nn.Conv3d(4, 6, (1, 3, 3))
        self.fc = nn.Linear(6, 10)


def values(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_default_rules_on_a_transformer():
    model = TinyGPT()
    report = init_model(model, {}, seed=11)
    d = 32
    assert torch.equal(model.wte.weight, model.lm_head.weight)  # tied: one parameter, initialized once
    assert [p.name for p in report].count("wte.weight") == 1 and "lm_head.weight" not in [p.name for p in report]
    assert stats.kstest(model.wte.weight.detach().flatten().numpy(), "norm").pvalue > 1e-4  # torch's N(0, 1)
    block = model.blocks[0]
    for norm in (block["ln_1"], block["ln_2"], model.ln_f):
        assert torch.equal(norm.weight, torch.ones(d)) and torch.equal(norm.bias, torch.zeros(d))
    assert not block["attn"].in_proj_bias.any() and not block["c_fc"].bias.any()
    # q, k and v are each a (d, d) projection: their own fans, one stream over the packed tensor.
    expected = berry.sample((3 * d, d), "xavier", fan_in=d, fan_out=d, seed=11, name="blocks.0.attn.in_proj_weight")
    np.testing.assert_array_equal(block["attn"].in_proj_weight.detach().numpy(), expected)
    assert report["blocks.0.attn.in_proj_weight"].std == pytest.approx(math.sqrt(2 / (2 * d)))
    expected = berry.sample((4 * d, d), "xavier", layout="torch", seed=11, name="blocks.1.c_fc.weight")
    np.testing.assert_array_equal(model.blocks[1]["c_fc"].weight.detach().numpy(), expected)


def test_default_rules_on_a_cnn():
    model = TinyCNN()
    init_model(model, {}, seed=2)
    for name, groups in (("conv1", 1), ("depthwise", 8), ("grouped", 4), ("conv3d", 1)):
        weight = getattr(model, name).weight
        expected = berry.sample(tuple(weight.shape), "xavier", layout="torch", groups=groups, seed=2, name=f"{name}.weight")
        np.testing.assert_array_equal(weight.detach().numpy(), expected)
        assert not getattr(model, name).bias.any()
    # A transposed convolution stores (in, out / groups, *k): fan_in = in / groups * k, fan_out = out / groups * k.
    fans = (8 // 2 * 4, 4 // 2 * 4)
    expected = berry.sample((8, 2, 2, 2), "xavier", fan_in=fans[0], fan_out=fans[1], seed=2, name="up.weight")
    np.testing.assert_array_equal(model.up.weight.detach().numpy(), expected)
    assert torch.equal(model.bn1.weight, torch.ones(8)) and not model.bn1.bias.any()


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell])
def test_recurrent_gates_have_their_own_fans_and_orthogonal_recurrence(cell):
    hidden, inputs = 16, 40
    module = cell(inputs, hidden) if cell in (nn.LSTMCell, nn.GRUCell) else cell(inputs, hidden, num_layers=2)
    gates = 4 if cell in (nn.LSTM, nn.LSTMCell) else 3
    init_model(module, {}, seed=3)
    suffix = "" if cell in (nn.LSTMCell, nn.GRUCell) else "_l0"
    recurrent = getattr(module, f"weight_hh{suffix}").detach()
    for gate in range(gates):
        block = recurrent[gate * hidden : (gate + 1) * hidden].double()
        torch.testing.assert_close(block @ block.T, torch.eye(hidden, dtype=torch.float64), atol=1e-5, rtol=0)
    expected = berry.sample((gates * hidden, inputs), "xavier", fan_in=inputs, fan_out=hidden, seed=3,
                            name=f"weight_ih{suffix}")
    np.testing.assert_array_equal(getattr(module, f"weight_ih{suffix}").detach().numpy(), expected)
    assert not getattr(module, f"bias_ih{suffix}").any()


def test_embedding_padding_row_and_batchnorm_statistics():
    model = nn.Sequential(nn.Embedding(10, 4, padding_idx=3), nn.BatchNorm1d(4))
    model[1].running_mean.fill_(5.0)
    model[1].num_batches_tracked.fill_(9)
    report = init_model(model, {"0.weight": {"std": 0.02}})
    assert not model[0].weight[3].any() and model[0].weight[2].any()
    assert not model[1].running_mean.any() and torch.equal(model[1].running_var, torch.ones(4))
    assert model[1].num_batches_tracked.item() == 0
    assert "1.running_mean" in report.reset_buffers


def test_rules_from_a_plain_dict_survive_json():
    rules = {
        "*.c_proj.weight": {"std": 0.02 / math.sqrt(2 * 2), "distribution": "truncated_normal", "correct_variance": False},
        "Linear:weight": {"std": 0.02},
        "MultiheadAttention:in_proj_weight": {"init": "he", "distribution": "uniform"},
        "Embedding:weight": {"std": 0.02},
        "*.bias": 0.0,
    }
    model_a, model_b = TinyGPT(), TinyGPT()
    init_model(model_a, rules, seed=4)
    report = init_model(model_b, json.loads(json.dumps(rules)), seed=4)
    for name, value in values(model_a).items():
        assert torch.equal(value, values(model_b)[name]), name
    assert report["blocks.0.c_proj.weight"].rule == "*.c_proj.weight"  # a name pattern beats a type rule
    assert report["blocks.0.c_fc.weight"].rule == "Linear:weight"
    assert report["blocks.0.attn.out_proj.weight"].rule == "Linear:weight"  # out_proj is a Linear subclass
    bound = 2 * 0.02 / 2
    assert model_a.blocks[1]["c_proj"].weight.abs().max() <= bound
    # he per q/k/v block: uniform with bound sqrt(3) * sqrt(2 / d) (fan_in = d for each block).
    assert model_a.blocks[0]["attn"].in_proj_weight.abs().max() <= math.sqrt(6 / 32)
    assert report["blocks.0.attn.in_proj_weight"].std == pytest.approx(math.sqrt(2 / 32))


def test_rule_forms_and_first_match_wins():
    model = nn.Sequential(OrderedDict(a=nn.Linear(4, 4), b=nn.Linear(4, 4), c=nn.Conv1d(2, 2, 1)))
    before = model.b.weight.detach().clone()
    rules = [
        Rule("b.weight", "keep"),
        ("*.weight", "orthogonal"),
        {"match": "a.*", "init": "ones"},  # a.weight already matched *.weight: first name rule wins
        (nn.Conv1d, {"init": "constant", "value": 0.5}),
        Rule("Linear:bias", berry.InitSpec("zeros")),
    ]
    report = init_model(model, rules)
    assert torch.equal(model.b.weight, before) and report["b.weight"].init == "kept"
    torch.testing.assert_close(model.a.weight @ model.a.weight.T, torch.eye(4), atol=1e-6, rtol=0)
    assert torch.equal(model.a.bias, torch.ones(4))
    assert torch.equal(model.c.bias, torch.full((2,), 0.5)) and report["c.bias"].rule == "Conv1d:*"
    assert report["c.weight"].rule == "*.weight"


def test_callable_rules_get_seed_and_name():
    model = nn.Sequential(nn.Linear(8, 6))
    rule = functools.partial(binit.trunc_normal_, std=0.02, a=-0.04, b=0.04)
    report = init_model(model, {"Linear:weight": rule}, seed=6)
    expected = binit.trunc_normal_(torch.empty(6, 8), std=0.02, a=-0.04, b=0.04, seed=6, name="0.weight")
    assert torch.equal(model[0].weight, expected) and report["0.weight"].init == "trunc_normal_"


def test_keys_are_names_so_other_layers_do_not_matter():
    def build(names):
        return nn.Sequential(OrderedDict((name, nn.Linear(5, 5)) for name in names))

    reference = build(["enc", "mid", "dec"])
    init_model(reference, {}, seed=8)
    grown = build(["pre", "dec", "enc", "extra", "mid"])  # layers added and reordered
    init_model(grown, {}, seed=8)
    for name, value in values(reference).items():
        assert torch.equal(values(grown)[name], value), name


@settings(max_examples=12, derandomize=True, deadline=None)
@given(st.permutations(["alpha", "beta", "gamma", "delta"]), st.integers(1, 4))
def test_parameter_order_invariance(order, keep):
    layers = OrderedDict((name, nn.Linear(3, 4)) for name in order[:keep])
    model = nn.Sequential(layers)
    init_model(model, {}, seed=1)
    for name in order[:keep]:
        expected = berry.sample((4, 3), "xavier", layout="torch", seed=1, name=f"{name}.weight")
        np.testing.assert_array_equal(getattr(model, name).weight.detach().numpy(), expected)


def test_idempotent_and_seed_dependent():
    model = TinyGPT()
    init_model(model, {}, seed=1)
    first = values(model)
    init_model(model, {}, seed=1)
    assert all(torch.equal(value, values(model)[name]) for name, value in first.items())
    init_model(model, {}, seed=2)
    assert not torch.equal(first["blocks.0.c_fc.weight"], model.blocks[0]["c_fc"].weight)


def test_meta_model_materialized_with_to_empty():
    with torch.device("meta"):
        meta_model = TinyGPT()
    init_model(meta_model, {}, seed=5)  # meta parameters: nothing to fill, no error
    meta_model.to_empty(device="cpu")
    init_model(meta_model, {}, seed=5)
    eager = TinyGPT()
    init_model(eager, {}, seed=5)
    for name, value in values(eager).items():
        assert torch.equal(values(meta_model)[name], value), name


def test_mixed_dtypes_and_wrappers():
    inner = TinyCNN()
    wrapper = nn.Module()
    wrapper._orig_mod = inner  # what torch.compile's wrapper looks like
    init_model(wrapper, {}, seed=9)
    reference = TinyCNN()
    init_model(reference, {}, seed=9)
    assert all(torch.equal(value, values(inner)[name]) for name, value in values(reference).items())
    half = TinyCNN().to(torch.bfloat16)
    init_model(half, {}, seed=9)
    assert torch.equal(half.fc.weight, reference.fc.weight.to(torch.bfloat16))


def test_prefix_initializes_a_submodule_as_part_of_the_whole():
    whole = TinyGPT()
    init_model(whole, {}, seed=3)
    part = TinyGPT().blocks[1]
    init_model(part, {}, seed=3, prefix="blocks.1")
    assert torch.equal(part["c_fc"].weight, whole.blocks[1]["c_fc"].weight)


def test_strict_reports_rules_that_match_nothing():
    model = TinyCNN()
    init_model(model, {"Lineer:weight": "zeros"})  # not strict: silently unused
    with pytest.raises(UnmatchedRuleError, match="Lineer:weight"):
        init_model(model, {"Lineer:weight": "zeros", "fc.bias": "zeros"}, strict=True)


def test_bad_rules_are_reported_before_anything_changes():
    model = nn.Sequential(nn.Linear(3, 3))
    before = values(model)
    with pytest.raises(ValueError, match=r"\*\.weight"):
        init_model(model, {"*.bias": "zeros", "*.weight": {"std": 0.1, "gian": 2}})
    with pytest.raises(ValueError, match="xaviar"):
        init_model(model, {"*.weight": "xaviar"})
    with pytest.raises(TypeError, match="rules"):
        init_model(model, "xavier")
    assert all(torch.equal(value, values(model)[name]) for name, value in before.items())


def test_unknown_vector_parameters_warn():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.gamma = nn.Parameter(torch.empty(4))
            self.kernel = nn.Parameter(torch.empty(4, 6))

    model = Scale()
    with pytest.warns(UserWarning, match="gamma"):
        report = init_model(model, {})
    assert torch.equal(model.gamma, torch.ones(4)) and report["kernel"].init == "xavier normal"
    init_model(model, {"gamma": 0.5})  # a rule silences it


def test_report_table_and_dict():
    report = init_model(TinyCNN(), {}, verbose=False)
    table = report.table()
    assert "conv1.weight" in table and "default _ConvNd:weight" in table
    data = report.to_dict()
    assert data["seed"] == 0 and len(data["parameters"]) == len(report)
    json.dumps(data)


def test_rules_and_report_are_the_shared_ones():
    from berry import _rules

    assert binit.Rule is _rules.Rule and binit.InitReport is _rules.InitReport
    assert binit.ParameterInit is _rules.ParameterInit and binit.UnmatchedRuleError is _rules.UnmatchedRuleError
    assert binit.default_rules is _rules.default_rules
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    report = init_model(model, {})
    table = report.table()
    assert table.splitlines()[0].split() == ["parameter", "shape", "rule", "init", "std"]  # torch has no keys
    assert "state reset: 1.running_mean, 1.running_var, 1.num_batches_tracked" in table
    data = report.to_dict()
    assert [entry["key"] for entry in data["parameters"]] == [""] * 4
    assert data["defaults"] == "structural" and data["defaults_note"] == ""
    with pytest.raises(KeyError):
        report[""]  # an empty key names no parameter


def test_lazy_parameters_are_reported_and_bad_seeds_rejected():
    model = nn.Sequential(nn.LazyLinear(4), nn.Linear(4, 2))
    with pytest.warns(UserWarning, match="lazy"):
        report = init_model(model, {}, seed=1)
    assert [p.name for p in report] == ["1.weight", "1.bias"]
    with pytest.raises(ValueError, match="seed"):
        init_model(model, {}, seed=-1)


@pytest.mark.parametrize("flag", ["strict", "verbose", "respect_no_reinit"])
def test_boolean_arguments_take_bools_not_their_truth(flag):
    # strict="no" was strict and verbose="no" printed the table: a string is refused, not read by its truth
    model = nn.Sequential(nn.Linear(3, 3))
    before = model[0].weight.detach().clone()
    with pytest.raises(TypeError, match=f"{flag} must be True or False, got 'no' of type str"):
        init_model(model, {}, seed=0, **{flag: "no"})
    assert torch.equal(model[0].weight, before)


def test_explicit_fans_in_a_rule_win_over_the_layers():
    model = nn.Sequential(nn.Linear(10, 20))
    report = init_model(model, {"Linear:weight": {"init": "he", "fan_in": 50}}, seed=2)
    expected = berry.sample((20, 10), "he", fan_in=50, seed=2, name="0.weight")
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), expected)
    assert report["0.weight"].std == pytest.approx(math.sqrt(2 / 50))
    init_model(model, {"Linear:weight": {"init": "xavier", "fan_out": 30}}, seed=2)  # fan_in stays the layer's, 10
    expected = berry.sample((20, 10), "xavier", fan_in=10, fan_out=30, seed=2, name="0.weight")
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), expected)


# ------------------------------------------------------------------------------- parametrized weights
from torch.nn.utils import parametrizations, parametrize  # noqa: E402


def plain_layers():
    return nn.Sequential(nn.Linear(12, 9), nn.Conv2d(4, 6, 3, groups=2), nn.ConvTranspose1d(6, 4, 3))


def legacy_weight_norm(module, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated in favour of parametrizations.weight_norm
        return nn.utils.weight_norm(module, **kwargs)


@pytest.mark.parametrize("weight_norm", [parametrizations.weight_norm, legacy_weight_norm])
def test_weight_norm_layers_get_the_rule_on_their_effective_weight(weight_norm):
    plain = plain_layers()
    init_model(plain, {}, seed=4)
    normed = plain_layers()
    for i in range(3):
        weight_norm(normed[i], dim=1 if i == 2 else 0)
    report = init_model(normed, {}, seed=4)
    # The effective weight g v / ||v|| is what the plain layer gets: same values, same names, same rule.
    assert [p.name for p in report] == [p.name for p in init_model(plain_layers(), {}, seed=4)]
    assert report["1.weight"].rule == "default _ConvNd:weight" and report["1.weight"].init == "xavier normal"
    for i in range(3):
        torch.testing.assert_close(normed[i].weight, plain[i].weight, rtol=1e-6, atol=1e-7)
    # g = ||v|| per output row (dim 0), v = W: no random signs on the magnitudes.
    g = normed[0].parametrizations.weight.original0 if weight_norm is parametrizations.weight_norm else normed[0].weight_g
    torch.testing.assert_close(g.flatten(), plain[0].weight.norm(dim=1), rtol=1e-6, atol=0)
    assert bool((g > 0).all())
    x = torch.randn(3, 12, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(normed[0](x), plain[0](x))  # the forward pass sees the rule's weight


def test_rules_for_linear_weight_match_weight_normed_layers_by_name_and_type():
    model = nn.Sequential(parametrizations.weight_norm(nn.Linear(8, 6)), nn.Linear(6, 2))
    report = init_model(model, {"Linear:weight": {"std": 0.5}, "0.bias": 0.25}, seed=1)
    assert report["0.weight"].rule == "Linear:weight" and report["0.weight"].std == 0.5
    expected = berry.sample((6, 8), std=0.5, seed=1, name="0.weight")
    np.testing.assert_allclose(model[0].weight.detach().numpy(), expected, rtol=1e-6, atol=1e-7)
    assert torch.equal(model[0].bias, torch.full((6,), 0.25))
    assert not any("original" in p.name for p in report)


@pytest.mark.parametrize("spectral_norm", [parametrizations.spectral_norm, nn.utils.spectral_norm])
def test_spectral_norm_gets_the_rule_before_normalization_and_a_fresh_power_iteration(spectral_norm):
    plain = nn.Sequential(nn.Linear(20, 16))
    init_model(plain, {}, seed=2)
    with torch.device("meta"):
        model = nn.Sequential(spectral_norm(nn.Linear(20, 16)))
    model.to_empty(device="cpu")  # u and v hold garbage now
    report = init_model(model, {}, seed=2)
    assert report["0.weight"].init == "xavier normal (before spectral norm)"
    original = model[0].parametrizations.weight.original if hasattr(model[0], "parametrizations") else model[0].weight_orig
    assert torch.equal(original, plain[0].weight)
    model.eval()  # no power iteration in the forward: sigma comes from the u, v berry left
    sigma = float(torch.linalg.matrix_norm(plain[0].weight.detach().double(), 2))
    if spectral_norm is nn.utils.spectral_norm:
        model(torch.zeros(1, 20))  # the legacy hook recomputes the weight in its forward pre-hook
    torch.testing.assert_close(model[0].weight.detach().double(), plain[0].weight.detach().double() / sigma,
                               rtol=1e-3, atol=1e-4)
    assert any(name.endswith("_u") for name in report.reset_buffers)
    again = nn.Sequential(spectral_norm(nn.Linear(20, 16)))
    init_model(again, {}, seed=2)
    assert torch.equal(again.state_dict()[next(k for k in again.state_dict() if k.endswith("_u"))],
                       model.state_dict()[next(k for k in model.state_dict() if k.endswith("_u"))])


@pytest.mark.parametrize("shape", [(6, 6), (4, 7), (7, 4)])
def test_orthogonal_parametrization_gets_berrys_orthogonal_matrix_and_refuses_other_laws(shape):
    out_features, in_features = shape
    model = nn.Sequential(parametrizations.orthogonal(nn.Linear(in_features, out_features)))
    state = torch.get_rng_state()
    report = init_model(model, {}, seed=5)
    assert torch.equal(state, torch.get_rng_state())  # torch's right_inverse draws: berry forks the generator
    assert report["0.weight"].rule == "default orthogonal parametrization"
    expected = berry.sample(shape, "orthogonal", layout="torch", seed=5, name="0.weight")
    np.testing.assert_allclose(model[0].weight.detach().numpy(), expected, atol=1e-5)
    before = model[0].weight.detach().clone()
    with pytest.raises(ValueError, match=r"0\.weight is kept orthogonal.*xavier"):
        init_model(model, {"Linear:weight": "xavier"}, seed=6)
    assert torch.equal(model[0].weight.detach(), before)  # refused before anything was written


def test_a_parametrization_that_cannot_hold_the_rule_raises_and_writes_nothing():
    class Symmetric(nn.Module):
        def forward(self, x):
            return x.triu() + x.triu(1).transpose(-1, -2)

    model = nn.Sequential(nn.Linear(5, 5))
    parametrize.register_parametrization(model[0], "weight", Symmetric())
    before = model[0].parametrizations.weight.original.detach().clone()
    with pytest.raises(ValueError, match=r"0\.weight is computed by parametrization.*xavier normal"):
        init_model(model, {}, seed=1)
    assert torch.equal(model[0].parametrizations.weight.original, before)
    init_model(model, {"0.weight": "eye"}, seed=1)  # a symmetric rule it can hold
    assert torch.equal(model[0].weight.detach(), torch.eye(5))


def test_lazy_and_quantized_tensors_are_reported_and_warned_about():
    quantized = pytest.importorskip("torch.ao.nn.quantized")
    model = nn.Sequential(nn.LazyLinear(4), nn.Linear(4, 2))
    with pytest.warns(UserWarning, match=r"0\.weight \(lazy"):
        report = init_model(model, {}, seed=1)
    assert [name for name, _ in report.skipped] == ["0.weight", "0.bias"]
    assert "not initialized: 0.weight (lazy" in report.table() and report.to_dict()["skipped"][0][0] == "0.weight"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates quantized tensor creation
        model = nn.Sequential(nn.Linear(3, 3), quantized.Linear(3, 2))
    with pytest.warns(UserWarning, match=r"1\.weight \(quantized module Linear"):
        report = init_model(model, {}, seed=1)
    assert [p.name for p in report] == ["0.weight", "0.bias"] and report.skipped[0][0] == "1.weight"


def test_fan_blocks_are_the_layers_true_fans():
    from berry.torch._model import fan_blocks

    grouped = nn.Conv2d(8, 12, 3, groups=4)
    assert fan_blocks(grouped, "weight", tuple(grouped.weight.shape))[0].fans == (2 * 9, 3 * 9)
    transposed = nn.ConvTranspose2d(8, 6, 2, groups=2)
    assert fan_blocks(transposed, "weight", tuple(transposed.weight.shape))[0].fans == (4 * 4, 3 * 4)


# ------------------------------------------------------------------------------- materialize and ties
class TiedLM(nn.Module):
    """nanoGPT's tie: the embedding and the output head share one weight."""

    def __init__(self, vocab=64, d=16):
        super().__init__()
        self.transformer = nn.ModuleDict({"wte": nn.Embedding(vocab, d), "ln_f": nn.LayerNorm(d)})
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.transformer["wte"].weight = self.lm_head.weight
        self.register_buffer("mask", torch.tril(torch.ones(4, 4)), persistent=False)


def test_materialize_keeps_tied_weights_tied_where_to_empty_unties_them():
    eager = TiedLM()
    count = sum(p.numel() for p in eager.parameters())
    with torch.device("meta"):
        untied = TiedLM()
    untied.to_empty(device="cpu")
    assert sum(p.numel() for p in untied.parameters()) > count  # what the README recipe used to do

    with torch.device("meta"):
        model = TiedLM()
    with pytest.warns(UserWarning, match=r"\['mask'\].*uninitialized"):
        assert binit.materialize(model, "cpu") is model
    assert model.lm_head.weight is model.transformer["wte"].weight
    assert model.lm_head.weight.data_ptr() == model.transformer["wte"].weight.data_ptr()
    assert sum(p.numel() for p in model.parameters()) == count
    calls = []

    def counting(tensor, *, seed, name):
        calls.append(name)
        binit.normal_(tensor, std=0.02, seed=seed, name=name)

    report = init_model(model, {"*.weight": counting}, seed=3)
    assert calls == ["transformer.wte.weight", "transformer.ln_f.weight"] and len(report) == 3  # shared one: once
    init_model(eager, {"*.weight": counting}, seed=3)
    for name, value in values(eager).items():
        assert torch.equal(values(model)[name], value), name


def test_materialize_to_a_device_this_machine_lacks_names_it():
    # was torch's AssertionError "Torch not compiled with CUDA enabled" (or its invalid ordinal), naming no argument
    with torch.device("meta"):
        model = nn.Linear(3, 3)
    with pytest.raises(ValueError, match=r"device='cuda:99' is not available here \(.+\); give a device"):
        binit.materialize(model, "cuda:99")
    assert model.weight.is_meta


def test_materialize_keeps_values_that_exist_and_resets_batchnorm_statistics():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    model.register_buffer("table", torch.arange(4.0))  # built on a real device: keeps its values
    with warnings_none():
        binit.materialize(model, torch.device("cpu"))
    assert torch.equal(model.table, torch.arange(4.0))
    assert torch.equal(model[1].running_var, torch.ones(3)) and not model[1].running_mean.any()
    with pytest.raises(ValueError, match="meta"):
        binit.materialize(model, "meta")
    with pytest.raises(TypeError, match="Module"):
        binit.materialize("model", "cpu")


@contextlib.contextmanager
def warnings_none():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_init_model_warns_when_ties_recorded_by_materialize_were_lost():
    with torch.device("meta"):
        model = TiedLM()
    with pytest.warns(UserWarning):
        binit.materialize(model, "cpu")
    model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())  # untied behind berry's back
    with pytest.warns(UserWarning, match=r"transformer\.wte\.weight and lm_head\.weight were tied"):
        init_model(model, {}, seed=0)


def test_init_model_warns_when_a_hugging_face_config_ties_embeddings_that_are_not():
    class Config:
        tie_word_embeddings = True

    class HFLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = Config()
            self.embed_tokens = nn.Embedding(10, 4)
            self.lm_head = nn.Linear(4, 10, bias=False)

        def get_input_embeddings(self):
            return self.embed_tokens

        def get_output_embeddings(self):
            return self.lm_head

    model = HFLike()
    with pytest.warns(UserWarning, match=r"embed_tokens\.weight and lm_head\.weight were tied"):
        init_model(model, {})
    model.lm_head.weight = model.embed_tokens.weight
    with warnings_none():
        init_model(model, {})

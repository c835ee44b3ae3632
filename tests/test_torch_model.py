"""Whole-model initialization: rules, per-layer fans, keys by qualified name, meta materialization."""

from __future__ import annotations

import functools
import json
import math
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
    report = init_model(model, seed=11)
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
    init_model(model, seed=2)
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
    init_model(module, seed=3)
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
    init_model(reference, seed=8)
    grown = build(["pre", "dec", "enc", "extra", "mid"])  # layers added and reordered
    init_model(grown, seed=8)
    for name, value in values(reference).items():
        assert torch.equal(values(grown)[name], value), name


@settings(max_examples=12, derandomize=True, deadline=None)
@given(st.permutations(["alpha", "beta", "gamma", "delta"]), st.integers(1, 4))
def test_parameter_order_invariance(order, keep):
    layers = OrderedDict((name, nn.Linear(3, 4)) for name in order[:keep])
    model = nn.Sequential(layers)
    init_model(model, seed=1)
    for name in order[:keep]:
        expected = berry.sample((4, 3), "xavier", layout="torch", seed=1, name=f"{name}.weight")
        np.testing.assert_array_equal(getattr(model, name).weight.detach().numpy(), expected)


def test_idempotent_and_seed_dependent():
    model = TinyGPT()
    init_model(model, seed=1)
    first = values(model)
    init_model(model, seed=1)
    assert all(torch.equal(value, values(model)[name]) for name, value in first.items())
    init_model(model, seed=2)
    assert not torch.equal(first["blocks.0.c_fc.weight"], model.blocks[0]["c_fc"].weight)


def test_meta_model_materialized_with_to_empty():
    with torch.device("meta"):
        meta_model = TinyGPT()
    init_model(meta_model, seed=5)  # meta parameters: nothing to fill, no error
    meta_model.to_empty(device="cpu")
    init_model(meta_model, seed=5)
    eager = TinyGPT()
    init_model(eager, seed=5)
    for name, value in values(eager).items():
        assert torch.equal(values(meta_model)[name], value), name


def test_mixed_dtypes_and_wrappers():
    inner = TinyCNN()
    wrapper = nn.Module()
    wrapper._orig_mod = inner  # what torch.compile's wrapper looks like
    init_model(wrapper, seed=9)
    reference = TinyCNN()
    init_model(reference, seed=9)
    assert all(torch.equal(value, values(inner)[name]) for name, value in values(reference).items())
    half = TinyCNN().to(torch.bfloat16)
    init_model(half, seed=9)
    assert torch.equal(half.fc.weight, reference.fc.weight.to(torch.bfloat16))


def test_prefix_initializes_a_submodule_as_part_of_the_whole():
    whole = TinyGPT()
    init_model(whole, seed=3)
    part = TinyGPT().blocks[1]
    init_model(part, seed=3, prefix="blocks.1")
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
        report = init_model(model)
    assert torch.equal(model.gamma, torch.ones(4)) and report["kernel"].init == "xavier normal"
    init_model(model, {"gamma": 0.5})  # a rule silences it


def test_report_table_and_dict():
    report = init_model(TinyCNN(), verbose=False)
    table = report.table()
    assert "conv1.weight" in table and "default _ConvNd:weight" in table
    data = report.to_dict()
    assert data["seed"] == 0 and len(data["parameters"]) == len(report)
    json.dumps(data)


def test_lazy_parameters_are_skipped_and_bad_seeds_rejected():
    model = nn.Sequential(nn.LazyLinear(4), nn.Linear(4, 2))
    report = init_model(model, seed=1)
    assert [p.name for p in report] == ["1.weight", "1.bias"]
    with pytest.raises(ValueError, match="seed"):
        init_model(model, seed=-1)


def test_explicit_fans_in_a_rule_win_over_the_layers():
    model = nn.Sequential(nn.Linear(10, 20))
    report = init_model(model, {"Linear:weight": {"init": "he", "fan_in": 50}}, seed=2)
    expected = berry.sample((20, 10), "he", fan_in=50, seed=2, name="0.weight")
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), expected)
    assert report["0.weight"].std == pytest.approx(math.sqrt(2 / 50))
    init_model(model, {"Linear:weight": {"init": "xavier", "fan_out": 30}}, seed=2)  # fan_in stays the layer's, 10
    expected = berry.sample((20, 10), "xavier", fan_in=10, fan_out=30, seed=2, name="0.weight")
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), expected)

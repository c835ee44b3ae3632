"""The canonical layout (berry._canonical) and the shared rules (berry._rules), without any framework.

A framework tensor made of pieces must equal the canonical tensor read
through each piece's transpose and reshape, region by region, and
``canonical_state`` must invert it. The rules and defaults must be
``berry.torch.init_model``'s (checked against it when torch is installed).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import berry
from berry import _canonical as canonical
from berry._canonical import AttentionDims, CanonicalTensor, Parameter, fan_blocks
from berry._rules import (
    Identity,
    InitReport,
    ParameterInit,
    Rule,
    action_of,
    choose,
    default_rules,
    parse_rules,
)

SPEC = berry.InitSpec("he", distribution="uniform")


def whole_canonical(tensor: CanonicalTensor, spec=SPEC, seed=3):
    region = tuple(slice(0, n) for n in tensor.shape)
    return canonical.canonical_values(spec, seed=seed, tensor=tensor, region=region, dtype=np.dtype("float32"))


def parameter(pieces, shape):
    return Parameter("p", Identity("p", "p", ()), tuple(shape), np.dtype("float32"), tuple(pieces))


def test_dense_kernel_is_the_weight_transposed():
    pieces = canonical.linear_weight("fc", (6, 4))
    w = whole_canonical(pieces[0].tensor)
    assert pieces[0].tensor.key == "fc.weight" and w.shape == (4, 6)
    np.testing.assert_array_equal(parameter(pieces, (6, 4)).values(SPEC, 3), w.T)
    expected = berry.sample((4, 6), "he", distribution="uniform", layout="torch", seed=3, name="fc.weight")
    np.testing.assert_array_equal(w, expected)  # he reads torch's fans: fan_in = 6


def test_conv_kernels_move_axes_and_keep_groups():
    pieces = canonical.conv_weight("conv", (3, 5, 2, 8), groups=4)  # (kh, kw, in // groups, out)
    tensor = pieces[0].tensor
    assert tensor.shape == (8, 2, 3, 5) and tensor.types == ("Conv2d", "_ConvNd") and tensor.groups == 4
    assert fan_blocks(tensor)[0].fans == (2 * 15, 8 // 4 * 15)
    np.testing.assert_array_equal(parameter(pieces, (3, 5, 2, 8)).values(SPEC, 3),
                                  whole_canonical(tensor).transpose(2, 3, 1, 0))
    for out_before_in in (False, True):
        shape = (2, 2, 6, 4)
        pieces = canonical.conv_transpose_weight("up", shape, out_before_in=out_before_in)
        w = whole_canonical(pieces[0].tensor)  # torch's (in, out, *k)
        expected = w.transpose(2, 3, 1, 0) if out_before_in else w.transpose(2, 3, 0, 1)
        np.testing.assert_array_equal(parameter(pieces, shape).values(SPEC, 3), expected)
    pieces = canonical.depthwise_weight("dw", (3, 4, 2))  # (k, channels, multiplier)
    w = whole_canonical(pieces[0].tensor)  # torch's (channels * multiplier, 1, k), groups = channels
    assert w.shape == (8, 1, 3) and pieces[0].tensor.groups == 4
    values = parameter(pieces, (3, 4, 2)).values(SPEC, 3)
    for c in range(4):
        for m in range(2):
            np.testing.assert_array_equal(values[:, c, m], w[c * 2 + m, 0, :])


def test_attention_projections_are_rows_of_in_proj_weight():
    dims = AttentionDims(8, 8, 8, 2, 4, 4)
    assert dims.packed
    rows = {}
    for index, role in enumerate("qkv"):
        (piece,) = canonical.attention_param("attn", role, False, (8, 2, 4), dims)
        assert piece.tensor.key == "attn.in_proj_weight" and piece.rows == (index * 8, index * 8 + 8)
        rows[role] = parameter([piece], (8, 2, 4)).values(SPEC, 3)
    full = whole_canonical(piece.tensor)
    for index, role in enumerate("qkv"):
        np.testing.assert_array_equal(rows[role].reshape(8, 8), full[index * 8 : index * 8 + 8].T)
    assert [block.fans for block in fan_blocks(piece.tensor)] == [(8, 8)] * 3
    (out,) = canonical.attention_param("attn", "out", False, (2, 4, 8), dims)
    assert out.tensor.key == "attn.out_proj.weight" and out.tensor.types[-1] == "Linear"
    separate = AttentionDims(8, 5, 5, 2, 4, 4)
    (key_piece,) = canonical.attention_param("attn", "k", False, (5, 2, 4), separate)
    assert key_piece.tensor.key == "attn.k_proj_weight" and key_piece.tensor.shape == (8, 5)


def test_recurrent_gates_are_rows_in_torch_order():
    # Keras' GRU kernel (in, 3H) in gate order z, r, h is torch's weight_ih rows r, z, n.
    pieces = canonical.gate_param("gru", "GRU", "ih", (4, 9), "zrn", wrapped=True)
    tensor = pieces[0].tensor
    assert tensor.key == "gru.weight_ih_l0" and tensor.shape == (9, 4)
    full = whole_canonical(tensor)
    values = parameter(pieces, (4, 9)).values(SPEC, 3)
    np.testing.assert_array_equal(values[:, 0:3], full[3:6].T)  # z
    np.testing.assert_array_equal(values[:, 3:6], full[0:3].T)  # r
    np.testing.assert_array_equal(values[:, 6:9], full[6:9].T)  # n
    assert [block.label for block in fan_blocks(tensor)] == list("rzn")
    bias = canonical.gate_param("gru", "GRU", "hh", (2, 9), "zrn", wrapped=True, bias=True, leading=1)
    assert all(piece.target[0] == slice(1, 2) for piece in bias)
    single = canonical.gate_param("cell", "LSTM", "hh", (3, 3), "f", wrapped=False)
    assert single[0].tensor.key == "cell.weight_hh" and single[0].rows == (3, 6)


def test_whole_matrix_initializers_make_each_gate_from_its_own_stream():
    spec = berry.InitSpec("orthogonal")
    pieces = canonical.gate_param("lstm", "LSTM", "hh", (5, 20), "ifgo", wrapped=True)
    values = parameter(pieces, (5, 20)).values(spec, 3).astype(np.float64)
    for gate, label in enumerate("ifgo"):
        block = values[:, gate * 5 : gate * 5 + 5]
        np.testing.assert_allclose(block.T @ block, np.eye(5), atol=1e-5)
        expected = berry.sample((5, 5), "orthogonal", seed=3, name=f"lstm.weight_hh_l0[{label}]")
        np.testing.assert_array_equal(block.T, expected)


PIECES = {
    "dense": (canonical.linear_weight("fc", (6, 5)), (6, 5)),
    "dense_general": (canonical.linear_weight("dg", (4, 2, 3), 1), (4, 2, 3)),
    "attention_q": (canonical.attention_param("a", "q", False, (6, 2, 3), AttentionDims(6, 6, 6, 2, 3, 3)), (6, 2, 3)),
    "attention_out": (canonical.attention_param("a", "out", False, (2, 3, 6), AttentionDims(6, 6, 6, 2, 3, 3)), (2, 3, 6)),
    "depthwise": (canonical.depthwise_weight("dw", (3, 2, 3)), (3, 2, 3)),
    "gru": (canonical.gate_param("g", "GRU", "ih", (4, 6), "zrn", wrapped=True), (4, 6)),
    "gru_bias": (canonical.gate_param("g", "GRU", "ih", (2, 6), "zrn", wrapped=True, bias=True, leading=0)
                 + canonical.gate_param("g", "GRU", "hh", (2, 6), "zrn", wrapped=True, bias=True, leading=1), (2, 6)),
    "conv": (canonical.conv_weight("c", (3, 2, 4)), (3, 2, 4)),
}


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.sampled_from(sorted(PIECES)), st.data(), st.sampled_from([SPEC, berry.InitSpec("orthogonal")]))
def test_regions_of_framework_tensors_are_slices_of_the_whole(name, data, spec):
    pieces, shape = PIECES[name]
    if spec.kind == "orthogonal" and len(pieces[0].tensor.shape) < 2:
        spec = SPEC  # vectors have no orthogonal form
    whole = parameter(pieces, shape).values(spec, 5)
    region = []
    for size in shape:
        start = data.draw(st.integers(0, size - 1))
        region.append(slice(start, data.draw(st.integers(start + 1, size))))
    region = tuple(region)
    np.testing.assert_array_equal(parameter(pieces, shape).values(spec, 5, region), whole[region])


def test_canonical_state_inverts_the_pieces():
    entries = []
    for pieces, shape in PIECES.values():
        entries.append((pieces, parameter(pieces, shape).values(SPEC, 7)))
    state = canonical.canonical_state(entries)
    np.testing.assert_array_equal(state["fc.weight"], whole_canonical(PIECES["dense"][0][0].tensor, seed=7))
    np.testing.assert_array_equal(state["g.weight_ih_l0"], whole_canonical(PIECES["gru"][0][0].tensor, seed=7))
    q_rows = state["a.in_proj_weight"][:6]
    np.testing.assert_array_equal(q_rows, whole_canonical(PIECES["attention_q"][0][0].tensor, seed=7)[:6])
    assert not state["a.in_proj_weight"][6:].any()  # k and v rows: no framework tensor given here


def test_random_values_refuse_integer_tensors():
    pieces = canonical.linear_weight("fc", (3, 2))
    with pytest.raises(TypeError, match="floating"):
        Parameter("fc/kernel", Identity("fc/kernel", "kernel", ()), (3, 2), np.dtype("int32"), tuple(pieces)).values(SPEC, 0)
    exact = Parameter("fc/kernel", Identity("fc/kernel", "kernel", ()), (3, 2), np.dtype("int32"), tuple(pieces))
    assert exact.values(berry.InitSpec("ones"), 0).tolist() == [[1, 1], [1, 1], [1, 1]]


def test_rules_match_either_identity():
    framework = Identity("fc/kernel", "kernel", ("Dense", "Layer"))
    canonical_identity = Identity("fc.weight", "weight", ("Linear",))
    identities = (framework, canonical_identity)
    for match in ("fc/kernel", "fc.weight", "Dense:kernel", "Linear:weight", "nn.Linear:weight", "keras.layers.Dense:*"):
        _, source, action = choose(identities, 2, parse_rules({match: "zeros"}), default_rules())
        assert source == match and action == berry.InitSpec("zeros")
    _, source, action = choose(identities, 2, [], default_rules())
    assert source == "default Linear:weight" and action == berry.InitSpec("xavier")
    _, source, _ = choose((Identity("x/scale", "scale", ("Custom",)),), 1, [], default_rules())
    assert source == "default *:*"
    with pytest.raises(ValueError, match=r"rule 'fc\.weight'"):
        parse_rules({"fc.weight": "xavierr"})
    with pytest.raises(TypeError, match="module class"):
        parse_rules([(int, "zeros")], module_class=Rule, framework="test")
    assert action_of("keep", "x") is None and action_of(0.5, "x") == berry.InitSpec("constant", value=0.5)


def test_report_lists_keys():
    entry = ParameterInit("fc/kernel", (6, 4), "float32", "default Linear:weight", "xavier normal", 0.4, "fc.weight")
    report = InitReport(3, (entry,), ("bn/moving_mean",), ("seed_generator/state",))
    assert report["fc.weight"] is entry and report["fc/kernel"] is entry and len(report) == 1
    table = report.table()
    assert "fc.weight" in table and "state reset: bn/moving_mean" in table and "seed_generator/state" in table
    assert report.to_dict()["parameters"][0]["key"] == "fc.weight"


def test_defaults_and_fans_are_berry_torchs():
    torch = pytest.importorskip("torch")
    bt = pytest.importorskip("berry.torch")
    ours = [(rule.describe(), rule.init) for rule in default_rules()]
    theirs = [(rule.describe(), rule.init) for rule in bt.default_rules()]
    assert ours == theirs
    from berry.torch import _model

    torch_blocks = getattr(_model, "fan_blocks", None) or _model._fan_blocks
    cases = [
        (torch.nn.Conv2d(4, 8, 3, groups=2), CanonicalTensor("w", (8, 2, 3, 3), ("Conv2d", "_ConvNd"), "weight", groups=2)),
        (torch.nn.ConvTranspose1d(4, 6, 2, groups=2),
         CanonicalTensor("w", (4, 3, 2), canonical.conv_types(1, transposed=True), "weight", groups=2, transposed=True)),
        (torch.nn.MultiheadAttention(8, 2), CanonicalTensor("w", (24, 8), ("MultiheadAttention",), "in_proj_weight")),
        (torch.nn.LSTM(5, 3), CanonicalTensor("w", (12, 5), ("LSTM", "RNNBase"), "weight_ih_l0")),
        (torch.nn.GRUCell(5, 3), CanonicalTensor("w", (9, 3), ("GRUCell", "RNNCellBase"), "weight_hh")),
        (torch.nn.Linear(5, 3), CanonicalTensor("w", (3, 5), ("Linear",), "weight")),
    ]
    for module, tensor in cases:
        expected = [(b.start, b.stop, b.label, b.fans) for b in torch_blocks(module, tensor.local, tensor.shape)]
        assert [(b.start, b.stop, b.label, b.fans) for b in fan_blocks(tensor)] == expected, tensor


def test_std_in_the_report_uses_the_block_fans():
    (piece,) = canonical.attention_param("attn", "k", False, (8, 2, 4), AttentionDims(8, 8, 8, 2, 4, 4))
    p = parameter([piece], (8, 2, 4))
    assert p.std(berry.InitSpec("xavier")) == pytest.approx(math.sqrt(2 / 16))


def test_naming_puts_the_adapters_names_under_the_prefix_and_checks_its_arguments():
    default = ".".join
    assert canonical.naming(None, "", default, path_kind="layer path")(("blocks_0", "attn")) == "blocks_0.attn"
    assert canonical.naming(None, "net", default, path_kind="layer path")(("fc",)) == "net.fc"
    assert canonical.naming(lambda path: "", "net", default, path_kind="layer path")(("fc",)) == "net"
    with pytest.raises(TypeError, match=r"naming must be a callable \(module path -> canonical module path\), got 3"):
        canonical.naming(3, "", default, path_kind="module path")
    with pytest.raises(TypeError, match="prefix must be a str, got None"):
        canonical.naming(None, None, default, path_kind="module path")
    with pytest.raises(TypeError, match=r"naming returned 7 for \('fc',\); it must return a str"):
        canonical.naming(lambda path: 7, "", default, path_kind="module path")(("fc",))

"""The papers' promises at small scale: smaller versions of examples/schemes_evidence.py (slow tests)."""

from __future__ import annotations

import importlib.util
import math
import pathlib

import pytest

torch = pytest.importorskip("torch")

_SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "examples" / "schemes_evidence.py"


@pytest.fixture(scope="module")
def evidence():
    spec = importlib.util.spec_from_file_location("schemes_evidence", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_deepnorm_bounds_the_update_of_a_deep_post_ln_transformer(evidence):
    rows = {(r["depth"], r["init"]): r for r in evidence.deepnorm_evidence(depths=(6, 40), steps=2, width=32)}
    # Default post-LN: one Adam step moves the output by about its own size at depth 40, far more than at 6.
    assert rows[40, "default"]["update"] > 0.5
    assert rows[40, "default"]["update"] > 4 * rows[6, "default"]["update"]
    # DeepNorm keeps the update a fraction of the output, and bounded across depth.
    assert rows[40, "deepnorm"]["update"] < 0.3
    assert rows[40, "deepnorm"]["update"] < rows[40, "default"]["update"] / 4
    # and the gradient reaching the bottom layer is as large as at the top (no vanishing).
    assert 0.5 < rows[40, "deepnorm"]["grad_ratio"] < 2
    assert rows[40, "deepnorm"]["alpha"] == pytest.approx(80**0.25)


@pytest.mark.slow
def test_fixup_trains_where_the_default_diverges(evidence):
    rows = {r["init"]: r for r in evidence.fixup_evidence(depth=100, width=32, lrs=(0.1,), steps=10)}
    he = rows["he"]
    assert math.isnan(he["loss_end"]) or he["loss_end"] > 1e3  # standard init explodes without normalization
    default = rows["default"]
    assert math.isnan(default["loss_end"]) or default["loss_end"] >= default["prior"] - 0.05
    fixup = rows["fixup"]
    assert fixup["loss_start"] == pytest.approx(math.log(10))  # zero classifier: uniform predictions
    assert math.isfinite(fixup["loss_end"]) and fixup["loss_end"] < fixup["loss_start"] - 0.02


@pytest.mark.slow
def test_lsuv_brings_every_layer_to_unit_variance(evidence):
    for row in evidence.lsuv_evidence(small=True, tol=0.1):
        assert row["within_tol"], row
        assert math.sqrt(0.9) <= row["lsuv_min"] and row["lsuv_max"] <= math.sqrt(1.1)


@pytest.mark.slow
def test_gpt2_scaling_keeps_the_residual_stream_flat(evidence):
    rows = {r["depth"]: r for r in evidence.gpt2_evidence(depths=(2, 48), width=32)}
    assert rows[48]["gpt2"] / rows[2]["gpt2"] < 1.6
    assert rows[48]["unscaled"] / rows[2]["unscaled"] > 2 * rows[48]["gpt2"] / rows[2]["gpt2"]


def test_the_generated_section_is_replaced_between_its_markers_only(evidence):
    begin, end = evidence.markers("classic")
    other_begin, other_end = evidence.markers("recipes")
    document = f"intro\n{begin}\nold\n{end}\nmiddle\n{other_begin}\nkept\n{other_end}\noutro\n"
    assert evidence.replace_block(document, "new", "classic") == (
        f"intro\n{begin}\nnew\n{end}\nmiddle\n{other_begin}\nkept\n{other_end}\noutro\n"
    )
    with pytest.raises(ValueError, match="markers"):
        evidence.replace_block("no markers", "new", "classic")
    with pytest.raises(AssertionError, match="no longer support"):
        evidence._claim(False, "a sentence the numbers contradict")


def test_docs_hold_each_generated_section_once(evidence):
    document = (_SCRIPT.parent.parent / "docs" / "schemes.md").read_text(encoding="utf-8")
    for part in evidence.PARTS:
        begin, end = evidence.markers(part)
        assert document.count(begin) == 1 and document.count(end) == 1, part


@pytest.mark.slow
def test_mup_numbers_follow_table_3(evidence):
    for row in evidence.mup_evidence(widths=(64, 128)):
        assert row["adam_hidden"] == pytest.approx(1 / row["r"]) and row["adam_input"] == 1.0
        assert row["hidden_std"] == pytest.approx(1 / math.sqrt(row["width"]))
        assert row["readout_std"] == pytest.approx(1 / math.sqrt(32) / row["r"])

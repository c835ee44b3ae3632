"""The training recipes' promises at small scale: smaller versions of examples/schemes_evidence.py (slow tests).

Each runs the ``--quick`` size of one experiment of ``--part recipes`` and checks the claim docs/schemes.md
makes from the full-size run.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys

import pytest

torch = pytest.importorskip("torch")

_SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "examples" / "schemes_evidence.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evidence():
    spec = importlib.util.spec_from_file_location("schemes_evidence", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["schemes_evidence"] = module  # the LoRA experiment's worker processes find it by name
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(threads)
    del sys.modules["schemes_evidence"]


def test_completep_keeps_the_best_learning_rate_across_depth(evidence):
    rows = {(r["parametrization"], r["depth"]): r
            for r in evidence.completep_evidence(depths=(2, 16), log2_lrs=range(-8, -3), width=32, steps=40)}
    completep = abs(rows["CompleteP", 16]["best_log2_lr"] - rows["CompleteP", 2]["best_log2_lr"])
    standard = abs(rows["standard", 16]["best_log2_lr"] - rows["standard", 2]["best_log2_lr"])
    assert completep == 0 < standard
    assert rows["CompleteP", 16]["multiplier"] == pytest.approx(2 / 16)
    assert rows["CompleteP", 2]["losses"] == rows["standard", 2]["losses"]  # at the base depth they are one model


def test_spectral_feature_updates_do_not_grow_with_width(evidence):
    rows = evidence.spectral_evidence(widths=(64, 1024))
    spectral = [r["spectral"] for r in rows]
    standard = [r["standard"] for r in rows]
    assert max(spectral) / min(spectral) < 1.5
    assert standard[1] / standard[0] > 2


def test_mimetic_attention_starts_diagonal_and_learns_faster(evidence):
    rows = {r["init"]: r for r in evidence.mimetic_evidence(seeds=(0,), steps=120)}
    assert rows["mimetic"]["self_attention"] > 4 * rows["default"]["self_attention"]
    assert rows["default"]["self_attention"] < 1.5 * rows["default"]["uniform"]
    assert rows["mimetic"]["losses"][-1] < 0.5 * rows["default"]["losses"][-1]


def test_mamba_dt_survives_a_whole_model_init(evidence):
    rows = {r["no_reinit"]: r for r in evidence.mamba_evidence(n_layers=2)}
    assert rows[True]["inside"] and not rows[False]["inside"]
    assert rows[False]["dt_min"] == pytest.approx(math.log(2))  # a zeroed bias: softplus(0)


def test_lora_adapted_model_equals_the_base_at_step_0(evidence):
    rows = {r["init"]: r for r in evidence.lora_step0_evidence(width=64)}
    assert rows["kaiming"]["max_diff"] == rows["gaussian"]["max_diff"] == 0.0
    for init in ("orthogonal", "pissa", "olora"):  # B A = 0, or W_res + s B A = W: equal up to rounding
        assert rows[init]["max_diff"] < 1e-5 * rows[init]["scale"]


def test_lora_std_does_not_depend_on_the_number_of_processes(evidence):
    rows = evidence.lora_tp_evidence(in_features=256)
    single, berry, local = rows[0], rows[1], rows[2]
    assert (berry["how"], local["how"]) == ("berry", "torch per shard")
    assert berry["same_values"] and berry["std"] == single["std"]
    assert single["std"] == pytest.approx(single["expected_std"], rel=0.05)
    assert local["std"] / single["std"] == pytest.approx(math.sqrt(2), rel=0.05) and not local["same_values"]

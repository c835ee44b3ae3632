"""benchmarks/gpu_check.py, the prepared GPU check, run as a dry run on CPU (the kernel interpreted).

The script is written to be run once on a CUDA machine; here every section runs with tiny sizes
(``--device cpu``), so its logic, its bit comparisons and its JSON are checked wherever Triton is
installed. Its timings mean nothing on CPU and are not checked. The DTensor section is left out here
(``--skip-sharded``: two processes under the interpreter cost half a minute); tests/test_triton_torch.py
checks DTensor shards through the kernel, and the section's dry run is in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _helpers import ROOT
from _triton_helpers import requires_triton, torch


@pytest.mark.slow
@requires_triton
def test_dry_run_on_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--skip-sharded", "--json", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["sections_skipped"] == []
    bits = results["bits"]
    assert bits["identical_fraction"] == 1.0
    assert len(bits["cases"]) == 9 * 4 + 2 and all(case["kernel_used"] for case in bits["cases"])
    methods = {row["method"] for row in results["speed"]["rows"]}
    assert {"torch.nn.init.normal_", "berry normal_", "berry trunc_normal kernel only", "torch.randn"} <= methods
    skeleton = results["skeleton"]
    assert skeleton["spot_check_values_differ"] == 0 and skeleton["parameters"] > 0
    assert "bits identical for 100% of values" in results["targets"]
    assert "bits identical for 100% of values" in run.stdout


def test_refuses_to_run_without_cuda(tmp_path):
    if torch.cuda.is_available():  # pragma: no cover - a GPU machine runs the real check instead
        pytest.skip("a GPU is present")
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--json", str(tmp_path / "x.json")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 2 and "--device cpu for a dry run" in run.stderr

"""Packaging promises: cheap import, the seed's qualified name, version, command entry points."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import berry

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("torch", "jax", "jaxlib", "flax", "keras", "tensorflow", "scipy", "matplotlib", "ml_dtypes", "safetensors")


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return result.stdout


def test_import_berry_imports_no_framework():
    code = (
        "import sys, json, berry, berry.initializations, berry.fans\n"
        "berry.xavier(shape=(3, 4)); berry.compute_fans((3, 4))\n"
        f"print(json.dumps(sorted(m for m in {OPTIONAL!r} if m in sys.modules)))"
    )
    assert json.loads(run_python(code)) == []


def test_braid_name_is_the_same_module_object():
    import berry.initializations
    import braid.berry.initializations as seed_module
    from braid.berry.initializations import get_initialzation, xavier

    assert seed_module is berry.initializations
    assert xavier is berry.initializations.xavier
    assert get_initialzation("xavier") is berry.xavier


def test_version_matches_changelog():
    assert re.fullmatch(r"\d+\.\d+\.\d+", berry.__version__)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {berry.__version__}" in changelog


def test_python_dash_m_berry():
    out = subprocess.run(
        [sys.executable, "-m", "berry", "std", "xavier", "--shape", "1500,500", "--json"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout
    payload = json.loads(out)
    assert payload["std"] == (2 / 2000) ** 0.5 and payload["fan_in"] == 1500 and payload["fan_out"] == 500


def test_cli_errors_are_one_clear_line():
    result = subprocess.run(
        [sys.executable, "-m", "berry", "std", "xavir", "--fan-in", "3"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 2
    assert "Did you mean 'xavier'" in result.stderr and "Traceback" not in result.stderr


def test_license_file_matches_the_declared_license():
    pyproject = (ROOT / "pyproject.toml").read_text()  # tomllib is Python 3.11+; berry supports 3.10
    assert re.search(r'^license = "MIT"$', pyproject, re.M) and re.search(r'^license-files = \["LICENSE"\]$',
                                                                            pyproject, re.M)
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text


def test_the_package_is_typed():
    assert (ROOT / "berry" / "py.typed").is_file()


def test_the_sdist_carries_what_its_tests_need(tmp_path):
    import tarfile

    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path), "sdist", "-d",
                    str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    (archive,) = tmp_path.glob("berry-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False).stdout
    needed = {"LICENSE", "README.md", "CHANGELOG.md", "conftest.py", "berry/py.typed", "berry/_cstream.c",
              "scripts/test", "scripts/regen_docs.py", "benchmarks/RESULTS.md", "examples/schemes_evidence.py",
              "docs/probe.md", "docs/berry-probe.png"}
    needed |= {name for name in tracked.split() if name.startswith("tests/")}
    assert needed <= names, sorted(needed - names)
    assert not any(name.endswith((".so", ".o", ".pyc")) for name in names)

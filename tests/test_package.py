"""Packaging promises: cheap import, the seed's qualified name, version, command entry points."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

import pytest
from _helpers import ROOT
from _helpers import run_python as run_hidden

import berry

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


# -- every documented rule and alias is an attribute ------------------------------------------------


def test_every_rule_and_alias_is_an_attribute_of_berry_and_of_the_seed_module():
    import berry.initializations as seed

    for name, rule in seed.list_initializations().items():
        assert getattr(berry, name) is rule, name
        assert getattr(seed, name) is rule, name
        assert name in seed.__all__ and name in berry.__all__, name
    for name in ("glorot", "kaiming", "small_init", "geometric", "msra", "selu", "he_fan_out", "kaiming_fan_out"):
        assert callable(getattr(berry, name)), name


def test_seed_module_all_lists_every_public_name():
    import berry.initializations as seed

    defined = {
        name for name, value in vars(seed).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == seed.__name__
    }
    assert defined - {"Rule"} <= set(seed.__all__)  # Rule: ScaleRule's former name, kept for old imports
    assert seed.Rule is seed.ScaleRule
    assert all(hasattr(seed, name) for name in seed.__all__)


# -- an adapter without its framework says what to install -------------------------------------------


@pytest.mark.parametrize(
    ("adapter", "hidden", "extra"),
    [("berry.torch", "torch", "torch"), ("berry.jax", "jax", "jax"), ("berry.keras", "keras", "keras")],
)
def test_an_adapter_without_its_framework_names_the_extra(tmp_path, adapter, hidden, extra):
    result = run_hidden(f"import berry, berry.sampling\nimport {adapter}", hide=[hidden], tmp_path=tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError") and f"pip install 'berry[{extra}]'" in last, result.stderr


def test_keras_without_any_backend_names_one(tmp_path):
    code = "import berry.keras"
    result = run_hidden(code, hide=["tensorflow", "jax", "torch"], tmp_path=tmp_path,
                        env={"KERAS_BACKEND": None, "KERAS_HOME": str(tmp_path)})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "needs a Keras backend" in last and "pip install 'berry[keras,jax]'" in last, result.stderr[-2000:]


def test_the_core_works_with_every_framework_hidden(tmp_path):
    code = "import berry; print(berry.sample((2, 3), 'he', seed=1, name='w').shape)"
    result = run_hidden(code, hide=["torch", "jax", "keras", "tensorflow", "flax"], tmp_path=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "(2, 3)", result.stderr


# -- the import graph: adapters stand alone, no cycles ------------------------------------------------

ADAPTERS = ("berry.torch", "berry.jax", "berry.keras")
#: Cycles allowed for now (none: any cycle fails).
PENDING_CYCLES: set[frozenset[str]] = set()


def _imports(node: ast.AST, package: str) -> set[str]:
    """Every module named by an import under ``node`` (at any depth), skipping ``if TYPE_CHECKING`` blocks."""
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
        return set()  # imports for type checkers only
    found: set[str] = set()
    if isinstance(node, ast.Import):
        found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{anchor}.{base}" if base else anchor
        found.add(base)
        found.update(f"{base}.{alias.name}" for alias in node.names)  # `from berry import kinds` names a module
    for child in ast.iter_child_nodes(node):
        found |= _imports(child, package)
    return found


def _import_graph() -> dict[str, set[str]]:
    """berry's modules and the berry modules each imports, at any level, outside ``if TYPE_CHECKING``."""
    modules = {}
    for path in (ROOT / "berry").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        found = _imports(ast.parse(path.read_text()), package)
        # A module's own packages are always imported before it, so naming one (`from berry.torch.auto import
        # _ops` inside berry.torch.auto) adds no import-order constraint: only the submodule counts.
        ancestors = {module.rsplit(".", depth)[0] for depth in range(1, module.count(".") + 1)}
        graph[module] = {name for name in found if name in modules and name not in (module, *ancestors)}
    return graph


def _adapter_of(module: str) -> str | None:
    return next((a for a in ADAPTERS if module == a or module.startswith(a + ".")), None)


def test_no_adapter_imports_another_and_the_core_imports_none():
    graph = _import_graph()
    assert "berry._adapter" in graph and "berry.kinds" in graph  # the graph sees every module
    for module, imports in graph.items():
        own = _adapter_of(module)
        for imported in imports:
            other = _adapter_of(imported)
            assert other is None or other == own, f"{module} imports {imported}"


def test_berry_has_no_import_cycles():
    graph = _import_graph()
    cycles = set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                cycles.add(frozenset(stack[stack.index(imported):]))
            elif imported not in state:
                visit(imported)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles <= PENDING_CYCLES, sorted(sorted(c) for c in cycles - PENDING_CYCLES)


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

"""docs/auto.md's zoo table is what the generator produces today (python -m berry.torch.auto._zoodocs --check)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from berry.torch.auto._zoodocs import _main

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[1] / "docs" / "auto.md"


def test_zoo_table_in_docs_is_current(capsys):
    assert _main(["--check", str(DOC)]) == 0, capsys.readouterr().out


def test_check_reports_a_stale_table(tmp_path, capsys):
    stale = tmp_path / "auto.md"
    text = DOC.read_text(encoding="utf-8")
    stale.write_text(text.replace("| mlp_relu |", "| mlp_relu (edited) |"), encoding="utf-8")
    assert _main(["--check", str(stale)]) == 1
    assert "stale" in capsys.readouterr().out

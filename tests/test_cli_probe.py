"""The ``berry probe`` command: table, JSON, plot, and the defaults the README promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from berry.cli import main

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL = ["--depth", "8", "--width", "16", "--batch-size", "8"]


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = pytest.importorskip("matplotlib.image").imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600


def test_default_run_compares_every_rule_prints_verdicts_and_draws_the_picture(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main(["probe"]) == 0
    out = capsys.readouterr().out
    assert "50-layer MLP, width 256, relu" in out
    for rule in ("xavier", "deepnet", "he", "lecun", "small_init", "geometric"):
        assert f"\n{rule} " in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()}
    assert "stable" in lines["he"] and "stable" in lines["deepnet"]
    assert "vanishing at layer" in lines["xavier"]
    assert "plot: berry-probe.png" in out
    _assert_png(tmp_path / "berry-probe.png")


def test_json_output(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["probe", "--json", "--inits", "xavier,he", "--no-plot", *SMALL]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plot"] is None
    assert data["config"]["depth"] == 8 and data["config"]["inits"] == ["xavier", "he"]
    assert [n["label"] for n in data["networks"]] == ["xavier", "he"]
    assert data["networks"][1]["verdict"]["kind"] == "stable"
    assert len(data["networks"][0]["layers"]) == 8
    assert {"output_std", "grad_std", "mean_field_std", "dead_fraction"} <= set(data["networks"][0]["layers"][0])
    assert not (tmp_path / "berry-probe.png").exists()


def test_options_reach_the_probe(capsys):
    assert main(["probe", "--json", "--no-plot", "--inits", "he", "--activation", "leaky_relu", "--param", "0.2",
                 "--residual", "--branch-scale", "auto", "--distribution", "uniform", "--seed", "3",
                 "--dtype", "float64", "--gain", "0.5", *SMALL]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["activation"] == "leaky_relu" and config["param"] == 0.2
    assert config["residual"] is True and config["branch_scale"] == pytest.approx(8 ** -0.5)
    assert (config["distribution"], config["seed"], config["dtype"], config["gain"]) == ("uniform", 3, "float64", 0.5)


def test_branch_scale_implies_residual_and_conv_arch(capsys):
    assert main(["probe", "--json", "--no-plot", "--inits", "he", "--branch-scale", "0.3", "--arch", "conv",
                 "--depth", "3", "--width", "4", "--batch-size", "2"]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["residual"] is True and config["arch"] == "conv" and config["branch_scale"] == 0.3


def test_explicit_plot_path_and_per_layer_tables(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    target = tmp_path / "probe.png"
    assert main(["probe", "--inits", "he,xavier", "--plot", str(target), "--layers", *SMALL]) == 0
    out = capsys.readouterr().out
    assert f"plot: {target}" in out and "layer8" in out
    _assert_png(target)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-plot", "--inits", "hee"], "Did you mean 'he'"),
        (["--no-plot", "--activation", "rleu"], "relu"),
        (["--no-plot", "--arch", "rnn"], "arch"),
        (["--no-plot", "--depth", "0"], "depth"),
        (["--plot", "x.png", "--no-plot"], "--no-plot"),
        (["--plot", "no/such/dir/x.png"], "does not exist"),
    ],
)
def test_bad_options_exit_2_with_a_message(argv, message, capsys, tmp_path, monkeypatch):
    if "--plot" in argv:
        pytest.importorskip("matplotlib")  # without it the error names the missing extra instead
    monkeypatch.chdir(tmp_path)
    assert main(["probe", *SMALL, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("berry probe: error:") and message in err


def test_missing_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    # the default picture is skipped with a note; the table still comes
    assert main(["probe", "--inits", "he", *SMALL]) == 0
    captured = capsys.readouterr()
    assert "stable" in captured.out and "berry[plot]" in captured.err
    assert not (tmp_path / "berry-probe.png").exists()
    # an explicit --plot is an error naming the extra
    assert main(["probe", "--inits", "he", "--plot", "p.png", *SMALL]) == 2
    assert "pip install 'berry[plot]'" in capsys.readouterr().err


def test_report_plot_names_the_extra_when_matplotlib_is_missing(monkeypatch):
    from berry import probe

    report = probe.run("he", depth=2, width=4)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"berry\[plot\]"):
        report.plot("never.png")


def test_subprocess_smoke(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "berry", "probe", "--json", "--no-plot", "--inits", "xavier,he", *SMALL],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [n["verdict"]["kind"] for n in data["networks"]] == ["vanishing", "stable"]


# --- the picture's file, the per-layer table, memory (issue 10, items 13, 18, 19) --------------------


def test_the_default_picture_is_replaced_but_an_explicit_one_needs_force(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    default = tmp_path / "berry-probe.png"
    default.write_bytes(b"an older picture")
    assert main(["probe", "--inits", "he", *SMALL]) == 0  # the quick start, run twice, still works
    _assert_png(default)
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"precious")
    assert main(["probe", "--inits", "he", "--plot", str(mine), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert mine.read_bytes() == b"precious"
    assert main(["probe", "--inits", "he", "--plot", str(mine), "--force", *SMALL]) == 0
    _assert_png(mine)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["berry-probe.png", "mine.png"]  # no temporary files


def test_plot_formats_come_from_the_extension(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["probe", "--inits", "he", "--plot", str(tmp_path / "p.svg"), *SMALL]) == 0
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")
    assert main(["probe", "--inits", "he", "--plot", str(tmp_path / "p.txt"), *SMALL]) == 2
    assert ".png" in capsys.readouterr().err and not (tmp_path / "p.txt").exists()


def test_an_unwritable_default_picture_is_a_note_not_an_error(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "berry-probe.png").mkdir()  # cannot be replaced by a file
    assert main(["probe", "--inits", "he", *SMALL]) == 0
    captured = capsys.readouterr()
    assert "stable" in captured.out and "plot:" not in captured.out
    assert "no plot drawn" in captured.err and "is a directory" in captured.err


def test_a_single_rule_prints_its_layers_only_when_asked(capsys):
    assert main(["probe", "--inits", "he", "--no-plot", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "layer8" not in out and "\nhe " in out
    assert main(["probe", "--inits", "he", "--no-plot", "--layers", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "layer8" in out and "output std" in out


def test_a_probe_too_big_for_memory_is_refused_with_the_estimate(capsys):
    assert main(["probe", "--inits", "he", "--no-plot", "--width", "100000", "--max-memory", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("berry probe: error: this probe needs about") and "--max-memory" in err
    assert "Traceback" not in err and "MemoryError" not in err


def test_a_deep_probe_runs_where_it_used_to_run_out_of_memory(capsys):
    # issue 10 item 13 asked for depth 5000 at width 256; the same holds at any depth (segments of sqrt(depth)).
    assert main(["probe", "--inits", "he", "--no-plot", "--depth", "1500", "--width", "32", "--batch-size",
                 "4", "--max-memory", "0.05", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["networks"][0]["layers"]) == 1500


def test_the_command_imports_numpy_only_when_it_runs():
    # berry probe pins BLAS to one thread (small matrices, where threads spin more than they help) before
    # NumPy loads; importing the command must not load NumPy first.
    code = "import sys; from berry.cli import build_parser; build_parser(); print('numpy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "False"

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


# --- berry probe --model MODULE:FACTORY --input SHAPE ---------------------------------------------------------------

CNN = ["--model", "examples.models:plain_cnn", "--input", "4x3x16x16"]


@pytest.fixture
def in_repo(monkeypatch):
    """Run from the repository's root, where examples.models is found (as the docs say)."""
    pytest.importorskip("torch")
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))


def test_model_is_probed_as_built_and_after_auto_init(in_repo, capsys):
    assert main(["probe", *CNN, "--no-plot"]) == 0
    out = capsys.readouterr().out
    built = next(line for line in out.splitlines() if line.startswith("as built "))
    initialized = next(line for line in out.splitlines() if line.startswith("auto_init "))
    # torch's default conv init (variance 1/(3 fan_in)) shrinks the signal ~0.41x per ReLU conv: the third conv,
    # module "4", is the first below a tenth of the input's std
    assert "vanishing at layer 5 (4, forward)" in built
    assert initialized.split()[1:3] == ["stable", "stable"]
    assert "berry probe --model examples.models:plain_cnn: Sequential, 35 module calls, input 4x3x16x16" in out
    assert "judged against: layers: each layer's output / the std entering 0" in out


def test_model_json_layers_and_seed(in_repo, capsys):
    assert main(["probe", *CNN, "--no-plot", "--json", "--seed", "7"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [n["label"] for n in data["networks"]] == ["as built", "auto_init"]
    assert data["networks"][1]["verdict"]["kind"] == "stable"
    assert data["networks"][0]["forward"]["name"] == "4"
    assert data["auto_init"]["seed"] == 7 and data["plot"] is None
    roles = [layer["role"] for layer in data["networks"][0]["layers"]]
    assert roles[:2] == ["layer", "other"] and roles[-1] == "head"
    assert main(["probe", *CNN, "--no-plot", "--layers"]) == 0
    assert "0 (Conv2d)" in capsys.readouterr().out


def test_token_inputs_cover_the_vocabulary_and_inputs_can_be_inferred(in_repo, capsys):
    assert main(["probe", "--model", "examples.models:tiny_gpt", "--input", "2x16:long", "--no-plot", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["networks"][1]["verdict"]["kind"] == "stable"
    assert main(["probe", "--model", "examples.models:tiny_gpt", "--no-plot"]) == 0
    captured = capsys.readouterr()
    assert "token ids (2, 16) inferred from the first layer wte" in captured.err
    assert "input 2x16, seed 0" in captured.out


def test_model_plot_follows_the_plot_rules(in_repo, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main(["probe", *CNN]) == 0  # the default picture, replaced on every run
    assert "plot: berry-probe.png" in capsys.readouterr().out
    _assert_png(tmp_path / "berry-probe.png")
    assert main(["probe", *CNN]) == 0
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"keep")
    assert main(["probe", *CNN, "--plot", str(mine)]) == 2  # an explicit existing file needs --force
    assert "--force" in capsys.readouterr().err and mine.read_bytes() == b"keep"
    assert main(["probe", *CNN, "--plot", str(mine), "--force"]) == 0
    _assert_png(mine)


@pytest.fixture
def factories(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    (tmp_path / "userfactories.py").write_text(
        "import torch\n"
        "def not_a_model():\n    return 3\n"
        "def broken():\n    raise RuntimeError('boom')\n"
        "def needs_args(width):\n    return torch.nn.Linear(width, width)\n"
        "def linear():\n    return torch.nn.Linear(8, 8)\n"
        "def activation_only():\n    return torch.nn.Sequential(torch.nn.ReLU())\n"
        "NOT_CALLABLE = 5\n"
    )
    (tmp_path / "needsdep.py").write_text("import a_package_that_is_not_installed\n")
    monkeypatch.chdir(tmp_path)
    for name in ("userfactories", "needsdep"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "no_colon"], "--model 'no_colon': expected MODULE:FACTORY"),
    (["--model", "no_such_module_x:make"], "--model 'no_such_module_x:make': no module named 'no_such_module_x'"),
    (["--model", "needsdep:make"], "importing 'needsdep' failed: No module named 'a_package_that_is_not_installed'"),
    (["--model", "userfactories:missing"],
     "module 'userfactories' has no attribute 'missing'; callables defined there: activation_only, broken, linear, "
     "needs_args, not_a_model"),
    (["--model", "userfactories:activation_only"], "--input: none given, and cannot infer an input for Sequential"),
    (["--model", "userfactories:NOT_CALLABLE"], "NOT_CALLABLE is a int, not a callable that builds a model"),
    (["--model", "userfactories:not_a_model"], "not_a_model() returned int, not a torch.nn.Module"),
    (["--model", "userfactories:broken"], "broken() raised RuntimeError: boom"),
    (["--model", "userfactories:needs_args"], "needs_args() raised TypeError"),
    (["--model", "userfactories:linear", "--input", "4x?"], "--input '4x?': input shape '4x?' must be integers"),
    (["--model", "userfactories:linear", "--input", "4x8:complex"], "--input '4x8:complex': input dtype 'complex'"),
    (["--model", "userfactories:linear", "--input", "0x8"], "--input '0x8': input shape '0x8' must have dimensions >= 1"),
    (["--model", "userfactories:linear", "--input", "4xx8"], "--input '4xx8': input shape '4xx8' must be integers"),
    (["--model", "userfactories:linear", "--input", "4x5"], "--input: userfactories:linear failed on input 4x5: "),
    (["--model", "userfactories:linear", "--depth", "3", "--residual"],
     "--depth, --residual shape the simulated networks, not --model"),
    (["--input", "4x8"], "--input describes the input of --model MODULE:FACTORY; give --model too"),
])
def test_model_errors_name_the_argument_and_exit_2(factories, capsys, argv, message):
    assert main(["probe", "--no-plot", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("berry probe: error: ") and message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_model_without_torch_gives_the_install_hint(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails, as where it is not installed
    assert main(["probe", "--model", "examples.models:tiny_gpt", "--no-plot"]) == 2
    assert "--model needs PyTorch, an optional extra of berry: pip install 'berry[torch]'" in capsys.readouterr().err


def test_model_in_a_subprocess_from_the_users_directory(in_repo):
    pytest.importorskip("torch")
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "berry", "probe", "--model", "examples.models:tiny_gpt", "--input",
                           "2x16:long", "--no-plot"], cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "auto_init  stable   stable" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "berry", "probe", "--model", "examples.models:nope"], cwd=REPO,
                         env=environment, capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "callables defined there: TinyGPT, gpt_with_a_broken_block, plain_cnn, tiny_gpt" in bad.stderr

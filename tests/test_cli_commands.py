"""The berry command as a whole: help for every option, usage errors, list, std, gain, info and --version."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

import pytest
from _helpers import ROOT

from berry import stream
from berry.cli import build_parser, main
from berry.sampling import InitSpec


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    return build_parser().parse_args([]).subparsers


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_has_help_and_shows_its_default(name):
    parser = _subcommands()[name]
    text = parser.format_help()
    for action in parser._actions:
        assert action.help, f"berry {name} {action.option_strings or action.dest} has no help"
        meaningful = not any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS))
        if action.option_strings and meaningful:
            flag = action.option_strings[-1]
            assert re.search(re.escape(flag) + r".*?default", text, re.S), f"berry {name} {flag}: default not shown"


def test_sample_has_an_option_for_every_initspec_field():
    import dataclasses

    options = {action.dest for action in _subcommands()["sample"]._actions}
    assert {field.name for field in dataclasses.fields(InitSpec)} <= options


@pytest.mark.parametrize(("name", "needed"), [("probe", []), ("sample", ["3,3", "--out", "w.npy"]),
                                              ("std", ["he"]), ("list", [])])
def test_an_unknown_option_prints_the_subcommands_usage(name, needed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, *needed, "--no-such-option"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: berry {name}") and "unrecognized arguments: --no-such-option" in err


def test_list_is_plain_text_with_every_kind_of_name(capsys):
    assert main(["list"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "``" not in out and ":func:" not in out and ":math:" not in out
    assert "small_init" in out and "2 / (5 d)" in out
    assert "orthogonal" in out and "eye (identity)" in out and "gelu (gelu_erf)" in out
    assert main(["list", "activations", "--json"]) == 0
    activations = json.loads(capsys.readouterr().out)["activations"]
    assert {"name": "silu", "aliases": ["swish"], "summary": activations[[a["name"] for a in activations].index("silu")]
            ["summary"]} in activations


def test_std_and_gain(capsys):
    assert main(["std", "he", "--shape", "128,16,3,3", "--layout", "torch", "--groups", "4", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["fan_in"] == 144 and payload["std"] == (2 / 144) ** 0.5
    assert main(["gain", "tanh", "--mode", "backward", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["mode"] == "backward" and round(payload["gain"], 5) == 1.46741 and payload["torch_gain"] == 5 / 3


def test_gain_with_a_slope_torch_cannot_tabulate(capsys):
    # torch's table squares the slope and overflows: that was a traceback, though the exact gain exists.
    assert main(["gain", "leaky_relu", "--param", "1e200", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert abs(payload["gain"] / (2**0.5 * 1e-200) - 1) < 1e-15 and payload["torch_gain"] is None
    assert main(["gain", "leaky_relu", "--param", "1e200"]) == 0
    assert "OverflowError (the slope's square overflows float64)" in capsys.readouterr().out


def test_std_of_a_fan_beyond_float64_is_an_error_not_a_traceback(capsys):
    assert main(["std", "he", "--fan-in", "1" + "0" * 400]) == 2
    assert "beyond float64's range" in capsys.readouterr().err


def test_version_names_the_stream_backend_and_simd_path():
    out = subprocess.run([sys.executable, "-m", "berry", "--version"], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    lines = out.splitlines()
    assert re.fullmatch(r"berry \d+\.\d+\.\d+", lines[0])
    if stream.BACKEND == "c":
        assert re.fullmatch(r"stream: C kernel, (avx512|avx2|generic) path, STREAM_VERSION \d+", lines[1])
    else:
        assert lines[1].startswith(f"stream: NumPy reference ({stream.backend_info()['reason']}; same bits, slower)")


def test_version_says_when_the_numpy_fallback_is_active():
    env = {"BERRY_STREAM_BACKEND": "numpy", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "berry", "--version"], capture_output=True, text=True, check=True,
                         cwd=ROOT, env=env).stdout
    assert "stream: NumPy reference (BERRY_STREAM_BACKEND=numpy; same bits, slower), STREAM_VERSION" in out


@pytest.mark.skipif(stream.BACKEND != "c", reason="the SIMD path is the C kernel's")
def test_version_reports_the_simd_path_in_use_not_the_best_one():
    # berry --version describes the backend through berry.stream.backend_info: the path that
    # BERRY_STREAM_SIMD chose, not a fresh "auto" selection (which also switched the path in use).
    env = {**os.environ, "BERRY_STREAM_SIMD": "generic", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "berry", "--version"], capture_output=True, text=True, check=True,
                         cwd=ROOT, env=env).stdout
    assert "stream: C kernel, generic path" in out


def test_info_reports_backend_threads_and_extras(capsys):
    assert main(["info", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["backend"] in ("c", "numpy") and payload["threads"] >= 1
    from berry.stream import backend_info

    assert {key: payload[key] for key in backend_info()} == backend_info()  # one description of the backend
    assert set(payload["extras"]) >= {"torch", "jax", "keras", "matplotlib", "safetensors", "ml_dtypes", "triton"}


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out

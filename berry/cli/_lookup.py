"""The small subcommands: ``berry list``, ``std``, ``gain`` and ``info`` (also ``berry --version``)."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
import textwrap
from typing import Any

from berry._format import format_table
from berry._version import __version__
from berry.cli._common import emit, parse_shape, plain_text

__all__ = ["add_gain", "add_info", "add_list", "add_std", "version_text"]

_LISTS = ("all", "rules", "initializers", "activations")
# Optional extras `berry info` reports, by the distribution that provides them.
_EXTRAS = ("torch", "jax", "flax", "keras", "matplotlib", "safetensors", "ml_dtypes", "triton", "scipy")


# --- berry list -------------------------------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    from berry.initializations import aliases_of, list_initializations

    rules = list_initializations(aliases=False)
    return [
        {"name": name, "aliases": aliases_of(name), "summary": plain_text((rule.__doc__ or "").strip().split("\n")[0])}
        for name, rule in sorted(rules.items())
    ]


def _initializers() -> list[dict[str, Any]]:
    from berry.initializations import STRUCTURAL_INITIALIZERS

    canonical = sorted(set(STRUCTURAL_INITIALIZERS.values()))
    return [{"name": name, "aliases": sorted(a for a, c in STRUCTURAL_INITIALIZERS.items() if c == name and a != name)}
            for name in canonical]


def _activations() -> list[dict[str, Any]]:
    from berry.activations import canonical_name, describe, list_activations

    names = list_activations(aliases=False)
    everything = list_activations()
    return [{"name": name, "aliases": sorted(a for a in everything if a != name and canonical_name(a) == name),
             "summary": plain_text(describe(name))} for name in names]


def _names(title: str, entries: list[dict[str, Any]]) -> str:
    names = ", ".join(e["name"] + (f" ({', '.join(e['aliases'])})" if e["aliases"] else "") for e in entries)
    return textwrap.fill(f"{title}: {names}", width=100, subsequent_indent="  ", break_on_hyphens=False)


def _cmd_list(args: argparse.Namespace) -> int:
    rules, initializers, activations = _rules(), _initializers(), _activations()
    payload: dict[str, Any] = {"rules": rules, "initializers": initializers, "activations": activations}
    rule_table = format_table([(r["name"], ", ".join(r["aliases"]) or "-", r["summary"]) for r in rules],
                              ("rule", "aliases", "summary"))
    activation_table = format_table(
        [(a["name"], ", ".join(a["aliases"]) or "-", a["summary"]) for a in activations],
        ("activation", "aliases", "definition"),
    )
    blocks = {
        "rules": "scale rules (berry std, berry probe --inits, berry sample --init):\n\n" + rule_table,
        "initializers": _names("structural initializers (berry sample --init)", initializers),
        "activations": "activations (berry gain, berry probe --activation):\n\n" + activation_table,
    }
    if args.what == "all":
        blocks["activations"] = _names("activations (berry gain, berry probe --activation; berry list activations)",
                                       activations)
        table = "\n\n".join(blocks.values())
    else:
        table = blocks[args.what]
        payload = {args.what: payload[args.what]}
    emit(args, payload, table)
    return 0


def add_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", default="all", choices=_LISTS,
                        help="what to list (default: the rules, then the other names in brief)")
    parser.set_defaults(handler=_cmd_list)


# --- berry std --------------------------------------------------------------------------------------


def _cmd_std(args: argparse.Namespace) -> int:
    from berry.fans import fans_for
    from berry.initializations import get_initialization

    rule = get_initialization(args.rule)
    fan_options: dict[str, Any] = {"layout": args.layout, "groups": args.groups}
    fans = fans_for(args.shape, args.fan_in, args.fan_out, **fan_options)
    std = rule(shape=args.shape, fan_in=args.fan_in, fan_out=args.fan_out, gain=args.gain, **fan_options)
    payload = {
        "rule": args.rule,
        "shape": list(args.shape) if args.shape is not None else None,
        "layout": args.layout,
        "fan_in": fans.fan_in,
        "fan_out": fans.fan_out,
        "gain": args.gain,
        "std": std,
    }
    rows = [(k, v) for k, v in payload.items() if v is not None]
    emit(args, payload, format_table(rows, ("quantity", "value")))
    return 0


def add_std(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rule", help="rule name, e.g. xavier, deepnet, he, lecun (berry list)")
    parser.add_argument("--shape", type=parse_shape, default=None, help="weight shape, e.g. 1500,500")
    parser.add_argument("--fan-in", type=int, default=None,
                        help="inputs per output unit; default: from --shape and --layout (explicit fans win)")
    parser.add_argument("--fan-out", type=int, default=None,
                        help="outputs per input unit; default: from --shape and --layout")
    parser.add_argument("--layout", default="channels_last", help="channels_last (..., in, out) or torch (out, in, *k)")
    parser.add_argument("--groups", type=int, default=1, help="convolution groups: each output sees in/groups inputs")
    parser.add_argument("--gain", type=float, default=1.0, help="multiplier of the std (berry gain ACTIVATION)")
    parser.set_defaults(handler=_cmd_std)


# --- berry gain -------------------------------------------------------------------------------------


def _cmd_gain(args: argparse.Namespace) -> int:
    from berry.gains import calculate_gain, gain

    exact = gain(args.activation, args.param, mode=args.mode)
    torch_text = "not tabulated"
    try:
        torch_table: float | None = calculate_gain(args.activation, args.param)
    except ValueError:
        torch_table = None  # torch tabulates only a few activations
    except OverflowError:  # leaky_relu with a slope whose square overflows: torch raises, the exact gain exists
        torch_table, torch_text = None, "OverflowError (the slope's square overflows float64)"
    payload = {"activation": args.activation, "param": args.param, "mode": args.mode, "gain": exact,
               "torch_gain": torch_table}
    rows = [
        ("activation", args.activation if args.param is None else f"{args.activation} (param {args.param:g})"),
        (f"variance-preserving gain ({args.mode})", exact),
        ("torch.nn.init.calculate_gain", torch_text if torch_table is None else torch_table),
    ]
    emit(args, payload, format_table(rows, ("quantity", "value")))
    return 0


def add_gain(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("activation", help="e.g. relu, tanh, gelu, silu, selu, leaky_relu (berry list activations)")
    parser.add_argument("--param", type=float, default=None, help="slope or alpha, where the activation has one")
    parser.add_argument("--mode", default="forward", choices=("forward", "backward"),
                        help="keep the signal's second moment (forward) or the gradient's (backward)")
    parser.set_defaults(handler=_cmd_gain)


# --- berry info / --version ---------------------------------------------------------------------------


def _backend_line(backend: dict[str, Any]) -> str:
    """One line from :func:`berry.stream.backend_info`, the one description of the active backend."""
    if backend["backend"] == "c":
        kernel = f"C kernel, {backend['simd']} path"
    else:
        kernel = f"NumPy reference ({backend['reason']}; same bits, slower)"
    return f"stream: {kernel}, STREAM_VERSION {backend['stream_version']}"


def version_text() -> str:
    """``berry --version``: the version, the stream backend and its SIMD path, Python and NumPy."""
    import numpy

    from berry.stream import backend_info

    return (f"berry {__version__}\n{_backend_line(backend_info())}\n"
            f"python {platform.python_version()}, numpy {numpy.__version__}")


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy

    from berry.stream import backend_info, default_threads

    backend = backend_info()
    extras = {name: _installed(name) for name in _EXTRAS}
    payload = {
        "berry": __version__,
        **backend,
        "threads": default_threads(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "extras": extras,
    }
    rows = [
        ("berry", __version__),
        ("stream backend", backend["backend"] if backend["simd"] is None else f"{backend['backend']} ({backend['simd']})"),
        ("STREAM_VERSION", backend["stream_version"]),
        ("stream threads", payload["threads"]),
        ("python", f"{payload['python']} ({sys.executable})"),
        ("numpy", payload["numpy"]),
        ("platform", payload["platform"]),
        *((f"extra: {name}", version or "not installed") for name, version in extras.items()),
    ]
    emit(args, payload, format_table(rows, ("quantity", "value")))
    return 0


def add_info(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=_cmd_info)

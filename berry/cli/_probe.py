"""``berry probe``: simulated deep networks, one per rule, or a real model before and after ``auto_init``.

Without ``--model`` the probe builds one deep network per rule (:func:`berry.probe.run`); with
``--model MODULE:FACTORY`` it imports the user's factory, probes the model as the factory built it,
initializes it with :func:`berry.torch.auto.auto_init` and probes it again
(:func:`berry.torch.auto.before_after`): one table, one picture, both verdicts.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from typing import Any

from berry.cli._common import CommandError, emit, note, positive_number
from berry.cli._files import Target, check_target, write_atomically

__all__ = ["DEFAULT_PLOT", "add_arguments", "command"]

#: The picture's default path: berry's own output, replaced on every run (an explicit --plot needs --force).
DEFAULT_PLOT = "berry-probe.png"


def _number_or_auto(text: str) -> float | str:
    """A number, or the word 'auto'."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, metavar="MODULE:FACTORY",
                        help="probe a real model instead: MODULE is imported (from the current directory or "
                             "sys.path), FACTORY() must return a torch.nn.Module; it is probed as built, "
                             "initialized with berry.torch.auto.auto_init, probed again (needs berry[torch])")
    parser.add_argument("--input", action="append", default=None, metavar="SHAPE",
                        help="with --model: the model's input, e.g. 8x3x32x32 (standard normal floats) or "
                             "4x128:long (token ids); once per forward argument (default: inferred from the "
                             "first layer)")
    parser.add_argument("--inits", default=None, metavar="RULES",
                        help="comma-separated rules or structural initializers to compare "
                             "(default: every built-in rule, see berry list)")
    parser.add_argument("--depth", type=int, default=50, help="number of layers")
    parser.add_argument("--width", type=int, default=None, help="units per layer (default 256; conv: 64 channels)")
    parser.add_argument("--activation", default="relu", help="e.g. relu, tanh, selu, gelu, linear (berry list)")
    parser.add_argument("--param", type=float, default=None, help="the activation's slope or alpha, if it has one")
    parser.add_argument("--distribution", default="normal", help="normal, truncated_normal or uniform")
    parser.add_argument("--residual", action="store_true", help="pre-activation residual blocks h + s f(h) W")
    parser.add_argument("--branch-scale", type=_number_or_auto, default=None, metavar="S",
                        help="residual branch scale s: a number, or 'auto' for 1/sqrt(depth) (implies --residual; "
                             "default 1)")
    parser.add_argument("--arch", default="mlp", help="mlp, or conv (3x3 circular convolutions on 8x8 images)")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs per batch (default 128; conv: 8)")
    parser.add_argument("--seed", type=int, default=0, help="the key of every draw, in [0, 2**64)")
    parser.add_argument("--gain", type=_number_or_auto, default=1.0,
                        help="multiplier of every rule's std, or 'auto': the activation's gain (berry gain)")
    parser.add_argument("--dtype", default="float32", help="float32 (as in training) or float64")
    parser.add_argument("--layers", action="store_true", help="also print every layer's statistics")
    parser.add_argument("--max-memory", type=positive_number, default=None, metavar="GIB",
                        help="refuse a probe estimated to need more (default: the memory available now)")
    parser.add_argument("--plot", default=None, metavar="FILE",
                        help=f"where to draw the picture: .png, .svg, .pdf... (default {DEFAULT_PLOT}, replaced on "
                             "every run; an existing FILE needs --force; needs berry[plot])")
    parser.add_argument("--no-plot", action="store_true", help="draw no picture")
    parser.add_argument("--force", action="store_true", help="replace an existing --plot FILE")


def _plot_target(args: argparse.Namespace) -> tuple[Target | None, str | None, str | None]:
    """The picture's checked target and format, or a note saying why the default picture is skipped."""
    if args.no_plot and args.plot is not None:
        raise CommandError("--plot and --no-plot contradict each other; give one")
    if args.no_plot:
        return None, None, None
    explicit = args.plot is not None
    path = args.plot if explicit else DEFAULT_PLOT
    try:
        from berry.probe.plot import supported_formats

        formats = supported_formats()
        file_format = os.path.splitext(path)[1].lower().lstrip(".")
        if file_format not in formats:
            raise CommandError(f"--plot {path!r}: the picture's format comes from its extension, one of "
                               f"{', '.join('.' + f for f in sorted(formats))}")
        return check_target(path, option="--plot", force=args.force, replace_existing=not explicit), file_format, None
    except ImportError as error:
        if explicit:
            raise CommandError(str(error)) from None
        return None, None, f"no plot drawn: {error}"  # the default picture is a bonus; the table still stands
    except CommandError as error:
        if explicit:
            raise
        return None, None, f"no plot drawn: {error}"


def command(args: argparse.Namespace) -> int:
    if args.model is not None:
        return _model_command(args)
    if args.input is not None:
        raise CommandError("--input describes the input of --model MODULE:FACTORY; give --model too")
    if "numpy" not in sys.modules:
        # The probe multiplies small matrices, where BLAS threads cost more than they give (and collapse
        # on a busy machine); a user's own setting wins.
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(variable, "1")
    from berry import probe

    target, file_format, skipped = _plot_target(args)  # before the work: a bad path fails in a second, not after
    inits = [name.strip() for name in args.inits.split(",") if name.strip()] if args.inits else None
    branch_scale = args.branch_scale
    if branch_scale == "auto":
        branch_scale = 1 / math.sqrt(args.depth) if args.depth > 0 else None
    try:
        report = probe.run(
            inits,
            depth=args.depth,
            width=args.width,
            activation=args.activation,
            param=args.param,
            distribution=args.distribution,
            residual=args.residual or branch_scale is not None,
            branch_scale=branch_scale,
            arch=args.arch,
            batch_size=args.batch_size,
            seed=args.seed,
            gain=args.gain,
            dtype=args.dtype,
            max_memory=None if args.max_memory is None else args.max_memory * 2**30,
        )
    except MemoryError as error:
        raise CommandError(str(error) or "out of memory; lower --width, --batch-size or --depth") from None
    if target is not None:
        figure = report.plot(None)
        write_atomically(target, lambda stream: _save(figure, stream, file_format))
    payload: dict[str, Any] = {**report.to_dict(), "plot": None if target is None else target.path}
    table = report.table(layers=args.layers)
    if target is not None:
        table += f"\nplot: {target.path}"
    emit(args, payload, table)
    if skipped is not None:
        note("probe", skipped)
    return 0


def _save(figure: Any, stream: Any, file_format: str | None) -> None:
    figure.savefig(stream, format=file_format, dpi=150)


# --- berry probe --model MODULE:FACTORY -----------------------------------------------------------------------------

#: The options of the simulated networks, with their defaults: with --model, one that was changed is an error.
_SIMULATED = {"inits": None, "depth": 50, "width": None, "activation": "relu", "param": None,
              "distribution": "normal", "residual": False, "branch_scale": None, "arch": "mlp", "batch_size": None,
              "gain": 1.0, "dtype": "float32", "max_memory": None}


def _load_model(spec: str) -> Any:
    """The model built by ``spec`` (MODULE:FACTORY), or a CommandError naming --model, the value and what is allowed."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise CommandError(f"--model {spec!r}: expected MODULE:FACTORY, a module to import and a callable in it "
                           "that returns a torch.nn.Module, e.g. --model examples.models:tiny_gpt")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # the user's own modules, as `python -m` would find them
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (module_name == error.name or module_name.startswith(error.name + ".")):
            raise CommandError(f"--model {spec!r}: no module named {module_name!r} (MODULE is a Python import path, "
                               "looked up from the current directory and sys.path)") from None
        raise CommandError(f"--model {spec!r}: importing {module_name!r} failed: {error}") from None
    except Exception as error:  # the user's module itself failed: say so, without a traceback of ours
        raise CommandError(f"--model {spec!r}: importing {module_name!r} failed: "
                           f"{type(error).__name__}: {error}") from None
    factory: Any = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            callables = sorted(name for name, value in vars(module).items()
                               if callable(value) and not name.startswith("_")
                               and getattr(value, "__module__", None) == module.__name__)
            raise CommandError(f"--model {spec!r}: module {module_name!r} has no attribute {attribute!r}; "
                               f"callables defined there: {', '.join(callables) or 'none'}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise CommandError(f"--model {spec!r}: {attribute} is a {type(factory).__name__}, not a callable that "
                           "builds a model")
    try:
        model = factory()
    except Exception as error:
        raise CommandError(f"--model {spec!r}: {attribute}() raised {type(error).__name__}: {error} "
                           "(FACTORY is called with no argument)") from None
    import torch

    if not isinstance(model, torch.nn.Module):
        raise CommandError(f"--model {spec!r}: {attribute}() returned {type(model).__name__}, not a "
                           "torch.nn.Module")
    return model


def _model_command(args: argparse.Namespace) -> int:
    changed = [f"--{dest.replace('_', '-')}" for dest, default in _SIMULATED.items()
               if getattr(args, dest) != default]
    if changed:
        raise CommandError(f"{', '.join(changed)} shape the simulated networks, not --model; drop "
                           f"{'it' if len(changed) == 1 else 'them'}")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise CommandError("--model needs PyTorch, an optional extra of berry: pip install 'berry[torch]'") from None
    target, file_format, skipped = _plot_target(args)
    model = _load_model(args.model)
    # The torch side lives in the adapter; the core names it only here, by name, when --model asks for it.
    torch_probe = importlib.import_module("berry.torch._probe")
    try:
        combined, report, inferred = torch_probe.before_and_after(model, args.input, seed=args.seed,
                                                                  label=f"--model {args.model}")
    except torch_probe.ModelInputError as error:
        raise CommandError(str(error)) from None
    if inferred:
        note("probe", inferred + " (give --input to choose)")
    if target is not None:
        figure = combined.plot(None)
        write_atomically(target, lambda stream: _save(figure, stream, file_format))
    table = combined.table(layers=args.layers)
    if target is not None:
        table += f"\nplot: {target.path}"
    payload: dict[str, Any] = {**combined.to_dict(), "auto_init": report.to_dict(),
                               "plot": None if target is None else target.path}
    emit(args, payload, table)
    if skipped is not None:
        note("probe", skipped)
    return 0

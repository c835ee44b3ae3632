"""berry chooses: architecture-aware initialization of any PyTorch model, from its executed graph.

:func:`auto_init` records what ``model(*example_inputs)`` actually executes
(on meta tensors: no memory, no compute), propagates the second moments of
activations forward and of gradients backward through that graph with
berry's exact Gaussian expectations, chooses every parameter's scale so that
each op's output keeps the target second moment at its actual operating
point, scales residual branches by the depth of their stream, and fills the
model with berry's keyed stream through :func:`berry.torch.init_model`. It
returns an :class:`AutoInitReport`: a plain ``rules`` dict that reproduces
the weights bit for bit, a table of what each parameter got and why, with
predicted (and, given real inputs, measured) statistics.

The theory: He et al. 2015 (second-moment propagation), Poole et al. 2016 and
Schoenholz et al. 2017 (mean field, the correlation map, the slope ``chi``
and the edge of chaos), Xiao et al. 2018 (convolutions), Radford et al. 2019
(GPT-2's residual scaling), Hanin & Rolnick 2018 (residual streams), Saxe et
al. 2014 (orthogonal recurrent weights), Mishkin & Matas 2016 (LSUV, for the
optional measured refinement). See ``docs/auto.md``.

>>> import torch
>>> from berry.torch.auto import auto_init
>>> layers = []
>>> for _ in range(20):
...     layers += [torch.nn.Linear(64, 64), torch.nn.ReLU()]
>>> model = torch.nn.Sequential(*layers, torch.nn.Linear(64, 10))
>>> report = auto_init(model, torch.randn(256, 64, generator=torch.Generator().manual_seed(0)), seed=0)
>>> report["2.weight"].rule, round(report["2.weight"].predicted_std, 3)
('normal(std=0.1768)', 1.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from torch import nn

from berry._validation import check_bool, check_seed, closest
from berry.torch.auto._inputs import InputSpec, load_model, parse_input
from berry.torch.auto._plan import build_plan, exact_pattern
from berry.torch.auto._policy import RESIDUAL_SCHEMES, Options
from berry.torch.auto._record import DataDependentError
from berry.torch.auto._report import AutoInitCheckError, AutoInitReport, BlockSummary, ParameterPlan

__all__ = [
    "RESIDUAL_SCHEMES",
    "AutoInitCheckError",
    "AutoInitReport",
    "BlockSummary",
    "DataDependentError",
    "InputSpec",
    "Options",
    "ParameterPlan",
    "auto_init",
    "auto_plan",
    "before_after",
    "default_rules_for",
    "exact_pattern",
    "load_model",
    "parse_input",
]


def auto_plan(model: nn.Module, *example_args: Any, seed: int = 0, example_kwargs: Mapping[str, Any] | None = None,
              on_meta: bool | None = None, **options: Any) -> AutoInitReport:
    """The initialization :func:`auto_init` would apply, without touching the model.

    Works on a model built on ``torch.device("meta")``: plan there, then
    ``model.to_empty(device=...)`` and ``report.apply(model)`` (or
    ``init_model(model, report.rules, seed=report.seed)``); on a sharded model
    (DTensor, FSDP2) each process then fills its own shard.

    Parameters are those of :func:`auto_init` (except ``measured``).
    """
    seed = check_seed(seed)
    on_meta = check_bool("on_meta", on_meta, allow_none=True)
    if example_kwargs is not None and not isinstance(example_kwargs, Mapping):
        raise TypeError(f"example_kwargs must be a dict of the forward's keyword arguments or None, got "
                        f"{type(example_kwargs).__name__}")
    return build_plan(model, example_args, example_kwargs, _options(options), seed=seed, on_meta=on_meta)


def _options(options: Mapping[str, Any]) -> Options:
    """The :class:`Options` of ``**options``; a keyword that is none of them is named with the allowed ones."""
    known = [field.name for field in dataclasses.fields(Options)]
    for key in options:
        if key not in known:
            hint = closest(key, known)
            raise TypeError(f"unexpected keyword argument {key}={options[key]!r}; the options are {', '.join(known)} (and seed, "
                            f"example_kwargs, on_meta, measured, measure)" + (f". Did you mean {hint!r}?" if hint else ""))
    return Options(**options)


def auto_init(model: nn.Module, *example_args: Any, seed: int = 0, measured: bool = False,
              measure: bool | None = None, example_kwargs: Mapping[str, Any] | None = None,
              on_meta: bool | None = None, **options: Any) -> AutoInitReport:
    """Initialize every parameter of ``model`` in place from its executed graph, and say why.

    Parameters
    ----------
    model:
        Any ``torch.nn.Module`` (CPU, CUDA, meta-built and materialized, DTensor/FSDP2-sharded).
    *example_args:
        What ``model(*example_args)`` takes: real tensors (their mean and
        second moment are used), meta tensors or :class:`InputSpec` (shape
        and dtype only; floats taken standardized), bare shapes (tuples of
        ints: standardized float inputs), or nothing (an input is inferred
        from the first layer and the report says so).
    seed:
        berry's seed in ``[0, 2**64)``: each parameter's values are keyed by
        ``(seed, its name)``.
    measured:
        After the analytic plan, refine each weight's scale on the example
        inputs, layer by layer (LSUV, Mishkin & Matas 2016, on the recorded
        graph), and report per layer the factor applied. Needs real inputs
        and a materialized model.
    measure:
        Measure each op's output and gradient std once, with hooks, beside the
        predictions (default: when real example inputs are given and the
        model holds values).
    example_kwargs:
        Keyword arguments of the forward.
    on_meta:
        ``None`` (default): record on meta tensors, or on the real ones if the
        forward needs values; ``True``/``False`` to force either.
    **options:
        See :class:`Options`: ``target`` (1.0), ``residual`` ("auto",
        "gpt2", "deepnorm", "t-fixup", "fixup", "none"), ``residual_growth``
        (1.0), ``logit_std`` (0.2), ``output_std``, ``critical`` (True), ``distribution`` ("normal",
        "truncated_normal", "uniform"), ``recurrent_gain`` (1.0), ``mup``
        (False: muP's readout std ``1/fan_in`` and zero query projections,
        Yang et al. 2021; the ``1/d`` attention scale is the model's to apply).

    Returns
    -------
    AutoInitReport
        ``rules`` (a dict :func:`berry.torch.init_model` accepts), ``table()``,
        ``to_dict()``/``to_json()``, ``check()``.
    """
    measured = check_bool("measured", measured)
    measure = check_bool("measure", measure, allow_none=True)
    report = auto_plan(model, *example_args, seed=seed, example_kwargs=example_kwargs, on_meta=on_meta, **options)
    report.apply(model)
    from berry.torch.auto import _measure

    if report.recorded_on == "real":  # the path was taken with the model's old weights: is it still taken?
        replanned = auto_plan(model, *example_args, seed=seed, example_kwargs=example_kwargs, on_meta=False,
                              **options)
        if replanned.rules != report.rules:
            replanned.apply(model)
            replanned.notes = (*replanned.notes, "the initialized model took another path on the example inputs: "
                                                 "planned again on that path")
            report = replanned

    real = _measure.has_real_inputs(example_args, example_kwargs) and _measure.holds_values(model)
    if measured:
        if not real:
            raise ValueError("measured=True refines scales on real example inputs: pass real, non-empty tensors and a model "
                             "that holds values (not meta, not sharded)")
        _measure.refine(model, report, example_args, example_kwargs)
    if measure or (measure is None and real):
        if not real:
            raise ValueError("measure=True needs real, non-empty example inputs and a model that holds values")
        _measure.measure(model, report, example_args, example_kwargs)
    return report


def default_rules_for(model: nn.Module, *example_args: Any, **options: Any) -> dict[str, Any] | None:
    """The structural plan's rules for ``model``, or ``None`` when no plan can be made without more input.

    The plan is made on meta tensors from the given inputs, or from an input
    inferred from the first layer; a model whose input cannot be inferred, or
    whose forward cannot be recorded on meta tensors, gives ``None``.
    :func:`berry.torch.init_model` without rules uses this plan (through
    :mod:`berry.torch.auto._defaults`, which also says why there is none).
    """
    try:
        report = auto_plan(model, *example_args, on_meta=True, **options)
    except (ValueError, TypeError, RuntimeError, NotImplementedError):
        return None
    return report.rules


def before_after(model: nn.Module, *example_args: Any, seed: int = 0, **options: Any) -> tuple[Any, AutoInitReport, Any]:
    """What ``berry probe --model`` shows: the probe of the model as it is, ``auto_init``, the probe after.

    Returns ``(probe before, auto_init report, probe after)``; the probes are
    :func:`berry.torch.probe` reports (tables and plots) on real inputs
    (specs are filled with deterministic values from ``seed``).
    """
    from berry.torch import probe
    from berry.torch.auto import _inputs

    device = next((p.device for p in model.parameters()), None)
    import torch

    real = [_inputs.materialize(a, device=device or torch.device("cpu"), seed=seed + i, high=_inputs.vocabulary(model))
            for i, a in enumerate(_inputs.normalize_inputs(example_args))]
    before = probe(model, tuple(real), seed=seed)
    report = auto_init(model, *real, seed=seed, **options)
    after = probe(model, tuple(real), seed=seed)
    return before, report, after

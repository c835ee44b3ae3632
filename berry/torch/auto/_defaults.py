"""What :func:`berry.torch.init_model` gives the parameters when it is given no rules at all.

The architecture plan (:func:`berry.torch.auto.auto_plan` from an input
inferred from the first layer, recorded on meta tensors: no memory, no
compute), or, when no plan can be made, nothing but the reason: init_model
then uses the structural defaults and says why. The plan is a pure function
of the model's structure (shapes, dtypes, the ops its forward executes), so
every process of a sharded model computes the same one without communicating.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from berry.torch.auto import _inputs
from berry.torch.auto._plan import build_plan, exact_pattern
from berry.torch.auto._policy import Options
from berry.torch.auto._record import DataDependentError, canonical_name

__all__ = ["PlannedDefaults", "plan_defaults"]

#: Roles whose plan is "no decision": init_model gives these parameters the structural defaults instead
#: (it fills every parameter; "kept" would leave a meta-materialized model's garbage in place).
_UNDECIDED = frozenset({"kept", "unused"})


@dataclasses.dataclass(frozen=True)
class PlannedDefaults:
    """The plan's rules for init_model, keyed like init_model names parameters, or why there are none."""

    #: parameter name (as init_model names it, under ``prefix``) -> (exact-name pattern, init); empty when
    #: no plan could be made
    rules: dict[str, tuple[str, Any]]
    sources: dict[str, str]  #: parameter name -> what the report's rule column says ("auto weight", ...)
    planned: bool  #: True: the architecture plan; False: fall back to the structural defaults
    note: str  #: where the plan came from, or why there is none


def plan_defaults(model: nn.Module, *, prefix: str = "", seed: int = 0) -> PlannedDefaults:
    """The architecture plan for ``model`` as init_model rules (names under ``prefix``), or the reason for none."""
    try:
        _inputs.infer_inputs(model)
    except ValueError as error:
        return _none(f"no input could be inferred ({error})")
    try:
        report = build_plan(model, (), None, Options(), seed=seed, on_meta=True)
    except DataDependentError:
        return _none(f"the forward of {type(model).__name__} depends on tensor values and cannot be recorded on "
                     "meta tensors; plan on real inputs with berry.torch.auto_init(model, inputs)")
    except Exception as error:  # any forward may fail on an inferred input: the reason is reported
        text = str(error).splitlines()[0] if str(error) else ""
        return _none(f"the forward of {type(model).__name__} could not be recorded on the inferred input "
                     f"({type(error).__name__}: {text[:200]}); pass example inputs to berry.torch.auto_init")
    rules: dict[str, tuple[str, Any]] = {}
    sources: dict[str, str] = {}
    for row in report.parameters:
        if row.role in _UNDECIDED:
            continue
        name = canonical_name([prefix, row.name])
        rules[name] = (exact_pattern(name), row.init)
        sources[name] = f"auto {row.role}"
    recorded = f"inputs: {report.inputs}" if report.inputs else "inputs given"
    note = f"architecture plan (berry.torch.auto_plan on meta tensors; {recorded})"
    return PlannedDefaults(rules, sources, True, note)


def _none(reason: str) -> PlannedDefaults:
    return PlannedDefaults({}, {}, False, reason)

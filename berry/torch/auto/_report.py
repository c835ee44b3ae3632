"""The plan as a report: one row per parameter, what it gets and why, predicted and measured statistics."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

from berry._format import format_table

__all__ = ["AutoInitCheckError", "AutoInitReport", "BlockSummary", "ParameterPlan"]


class AutoInitCheckError(AssertionError):
    """Some layers' statistics fall outside the band given to :meth:`AutoInitReport.check`."""


@dataclasses.dataclass(frozen=True)
class ParameterPlan:
    """One parameter's row of the plan."""

    name: str  #: canonical name (the key of the keyed stream and of ``rules``)
    shape: tuple[int, ...]
    init: Any  #: what ``rules[name]`` holds
    role: str  #: "weight", "bias", "embedding", "norm weight", "recurrent", "multiplier", "data", "kept", ...
    reason: str  #: why, in words
    op: str | None = None  #: the op it serves ("linear in blocks.0.mlp.c_fc")
    fan_in: float | None = None
    feeds: str | None = None  #: the elementwise function its op's output goes through
    residual: str | None = None  #: "branch 3/24 of stream 0", "shortcut", ...
    tie: str | None = None  #: the other names of a tied tensor
    target_std: float | None = None  #: the std the plan aims its op's output at
    predicted_std: float | None = None  #: of its op's output
    predicted_grad: float | None = None  #: of the loss gradient at its op's output, relative to the output's
    measured_std: float | None = None
    measured_grad: float | None = None
    refined: float | None = None  #: factor the measured refinement applied to the analytic std
    node: int | None = None  #: index of the op in the recorded graph (for tools)

    @property
    def rule(self) -> str:
        """The initializer in words: ``normal(std=0.0442)``, ``zeros``, ``orthogonal(gain=1)``, ``kept``."""
        init = self.init
        if init is None or init == "keep":
            return "kept"
        if isinstance(init, str):
            return init
        if isinstance(init, (int, float)):
            return f"constant({init:g})"
        if isinstance(init, dict):
            if "std" in init:
                law = init.get("distribution", "normal")
                return f"{law}(std={init['std']:.4g})"
            if init.get("init") == "orthogonal":
                return f"orthogonal(gain={init.get('gain', 1.0):g})"
            return ", ".join(f"{k}={v}" for k, v in init.items())
        return str(init)


@dataclasses.dataclass(frozen=True)
class BlockSummary:
    """One repeated block (a transformer layer, a residual block, a layer of a plain stack)."""

    name: str
    kind: str
    q_in: float  #: second moment entering it
    q_out: float
    chi: float  #: gradient second moment at its input / at its output (Schoenholz et al. 2017)
    measured_chi: float | None = None
    stream: int | None = None  #: the residual stream its input is on (a reference for per-stream judgements)


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.{digits}g}"


@dataclasses.dataclass
class AutoInitReport:
    """What :func:`berry.torch.auto_init` chose for every parameter, and why.

    ``rules`` is a plain dict ``{name: init}`` that :func:`berry.torch.init_model`
    accepts (save it as JSON, review it, edit it): ``init_model(model,
    report.rules, seed=report.seed)`` reproduces the same weights bit for bit.
    """

    seed: int
    rules: dict[str, Any]
    parameters: tuple[ParameterPlan, ...]
    blocks: tuple[BlockSummary, ...] = ()
    stacks: tuple[dict[str, Any], ...] = ()
    streams: tuple[dict[str, Any], ...] = ()
    not_understood: tuple[dict[str, str], ...] = ()
    roles: dict[str, str] = dataclasses.field(default_factory=dict)  #: module -> embedding, norm, head, block, ...
    notes: tuple[str, ...] = ()
    inputs: str = ""
    recorded_on: str = "meta"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    applied: bool = False
    measured: bool = False
    structure: Any = dataclasses.field(default=None, repr=False, compare=False)  #: the analysis, for tools

    def __iter__(self) -> Any:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def __getitem__(self, name: str) -> ParameterPlan:
        """The row of a parameter, by its name or any other name of a tied tensor."""
        for row in self.parameters:
            if row.name == name or (row.tie and name in row.tie.split(", ")):
                return row
        raise KeyError(f"no parameter named {name!r}; parameters: {[p.name for p in self.parameters][:8]}...")

    # --------------------------------------------------------------------------------- apply
    def apply(self, model: Any, *, seed: int | None = None) -> Any:
        """Initialize ``model`` with :attr:`rules` (e.g. after ``to_empty``); returns init_model's report."""
        from berry.torch import init_model

        result = init_model(model, self.rules, seed=self.seed if seed is None else seed)
        self.applied = True
        return result

    # --------------------------------------------------------------------------------- views
    def table(self, *, reasons: bool = True) -> str:
        """Every parameter: rule, role, fan, the function it feeds, residual place, tie, predicted/measured std."""
        header = ["parameter", "shape", "init", "fan_in", "feeds", "residual", "std pred", "grad pred"]
        if self.measured:
            header += ["std meas", "grad meas"]
        if any(p.refined is not None for p in self.parameters):
            header.append("refined")
        if reasons:
            header.append("why")
        rows = []
        for p in self.parameters:
            row: list[Any] = [p.name, "x".join(map(str, p.shape)) or "()", p.rule, _fmt(p.fan_in, 6),
                              p.feeds or "", p.residual or "", _fmt(p.predicted_std), _fmt(p.predicted_grad)]
            if self.measured:
                row += [_fmt(p.measured_std), _fmt(p.measured_grad)]
            if "refined" in header:
                row.append(_fmt(p.refined, 4))
            if reasons:
                row.append(p.reason + (f"; tied with {p.tie}" if p.tie else ""))
            rows.append(row)
        lines = [format_table(rows, header)]
        if self.inputs:
            lines.append(f"inputs: {self.inputs}; recorded on {self.recorded_on} tensors")
        for block in self.blocks:
            measured = f", measured {block.measured_chi:.3g}" if block.measured_chi is not None else ""
            lines.append(f"block {block.name} ({block.kind}): q {block.q_in:.3g} -> {block.q_out:.3g}, "
                         f"chi {block.chi:.3g}{measured}")
        for stack in self.stacks:
            lines.append(f"plain stack of {stack['depth']} {stack['activation']} layers: chi at the target "
                         f"{stack['chi_at_target']:.4g}, operating point q* {stack['q_star']:.3g}, bias variance "
                         f"{stack['bias_var']:.3g}, chi {stack['chi']:.4g}")
        for item in self.not_understood:
            lines.append(f"not understood: {item['op']} in {item['module'] or 'the model'}: {item['reason']}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready): seed, rules, one dict per parameter, blocks, stacks, streams, notes."""
        return {
            "seed": self.seed,
            "rules": self.rules,
            "parameters": [{**dataclasses.asdict(p), "rule": p.rule, "shape": list(p.shape)} for p in self.parameters],
            "blocks": [dataclasses.asdict(b) for b in self.blocks],
            "stacks": list(self.stacks),
            "streams": list(self.streams),
            "not_understood": list(self.not_understood),
            "roles": dict(self.roles),
            "notes": list(self.notes),
            "inputs": self.inputs,
            "recorded_on": self.recorded_on,
            "options": self.options,
            "measured": self.measured,
        }

    def to_json(self, **options: Any) -> str:
        """:meth:`to_dict` as JSON (non-finite numbers as null)."""
        return json.dumps(_finite(self.to_dict()), **options)

    def check(self, band: Sequence[float] = (0.5, 2.0), grad_band: Sequence[float] = (0.25, 4.0)) -> None:
        """Raise :class:`AutoInitCheckError` naming every layer that does not behave as planned (for a user's CI).

        Forward: each layer's output std (measured when the report has
        measurements, else predicted) divided by the std the plan aimed at
        must lie in ``band``. Backward (measured reports only): each layer's
        gradient std divided by the predicted one must lie in ``grad_band``;
        the gradients are compared with the prediction rather than with the
        output's because their per-element scale legitimately differs between
        layers of different widths (a head reading 64 features of a
        50000-word vocabulary sees larger gradients per element than the
        logits have).
        """
        low, high = _band("band", band)
        grad_low, grad_high = _band("grad_band", grad_band)
        failures = []
        for p in self.parameters:
            if p.target_std is None or p.target_std <= 0:
                continue
            std = p.measured_std if p.measured_std is not None else p.predicted_std
            if std is not None and not low <= std / p.target_std <= high:
                failures.append(f"{p.name}: output std {std:.4g} is {std / p.target_std:.3g}x the planned "
                                f"{p.target_std:.4g}")
            if p.measured_grad is not None and p.predicted_grad:
                ratio = p.measured_grad / p.predicted_grad
                if not grad_low <= ratio <= grad_high:
                    failures.append(f"{p.name}: gradient std {p.measured_grad:.4g} is {ratio:.3g}x the predicted "
                                    f"{p.predicted_grad:.4g}")
        if failures:
            source = "measured" if self.measured else "predicted"
            raise AutoInitCheckError(f"{len(failures)} layer(s) do not behave as planned ({source}; forward band "
                                     f"{list(band)}, backward band {list(grad_band)}):\n  " + "\n  ".join(failures))


def _band(name: str, band: Sequence[float]) -> tuple[float, float]:
    if len(band) != 2 or not 0 < float(band[0]) <= float(band[1]):
        raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {band!r}")
    return float(band[0]), float(band[1])


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value

"""What a probe found: per-layer statistics, verdicts, and the report's table and JSON.

The data classes here are shared by the simulated networks of
:func:`berry.probe.run` and by :func:`berry.torch.probe` on a real model; the
report draws itself with :mod:`berry.probe.plot` (matplotlib, optional).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from berry._format import format_table
from berry._validation import unknown_name

__all__ = ["BAND", "VERDICTS", "LayerStats", "NetworkProbe", "ProbeReport", "Verdict", "judge"]

#: A std more than this factor away from its starting value (either way) has exploded or vanished.
BAND = 10.0
#: The possible verdicts, from best to worst.
VERDICTS = ("stable", "vanishing", "exploding", "overflow")


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What happened to a std along the network.

    ``kind`` is one of :data:`VERDICTS`; ``layer`` the first layer (1-based, in
    the pass's order) where the std left ``[1/BAND, BAND]`` times its start
    or stopped being finite; ``direction`` ``"forward"`` or ``"backward"``.
    """

    kind: str
    layer: int | None = None
    direction: str | None = None
    #: The row's name, for a model's probe (the module, or the block after which the stream left the band).
    name: str | None = None
    #: What the std was compared with, in words (a model's probe: the stream and its reference).
    reference: str | None = None
    #: For a block that broke the stream: its first module whose output is off the same module's in the other
    #: blocks by more than the band (the block's weights, not the depth, are at fault).
    culprit: str | None = None

    def __str__(self) -> str:
        if self.kind == "stable":
            return "stable"
        where = f"{self.name}, {self.direction}" if self.name else self.direction
        if self.name and self.culprit:
            where = f"{self.name}, at {self.culprit.removeprefix(self.name + '.')}, {self.direction}"
        return f"{self.kind} at layer {self.layer} ({where})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "layer": self.layer, "direction": self.direction, "name": self.name,
                "reference": self.reference, "culprit": self.culprit}


@dataclass(frozen=True)
class LayerStats:
    """Statistics of one layer (or, for a torch model, one module).

    ``output_std`` is the std of the layer's output: for a dense or conv
    layer of :func:`berry.probe.run` its pre-activations ``h = x W`` (the
    activation comes after), for a residual block the stream it outputs, for
    a torch module (:func:`berry.torch.probe`) whatever the module returns.
    ``act_std`` and ``act_mean`` describe the layer's activations (a residual
    block's ``f`` of its input stream); ``grad_std`` is the std of the loss
    gradient with respect to the output; ``weight_grad_std`` that of the
    gradient with respect to the layer's weight. ``dead_fraction``: units whose activation derivative
    is zero on the whole batch; ``saturated_fraction``: entries where it is
    under a tenth of its peak (for ReLU this counts the off half).
    ``mean_field_std`` and ``mean_field_grad_std`` are the mean-field
    predictions of ``output_std`` and ``grad_std``. ``None`` where a quantity
    does not apply.

    For a torch model, ``role`` says what the row is (see
    :data:`berry.probe.streams.ROLES`: embedding, norm, head, block, layer,
    branch, other), ``stream`` which stream judges it (``"blocks"``,
    ``"layers"``, or ``""``: reported, not judged) and ``input_std`` the std
    of what entered it (for a block row: the stream entering the block).
    """

    layer: int
    name: str
    output_std: float
    act_std: float | None = None
    act_mean: float | None = None
    grad_std: float | None = None
    weight_grad_std: float | None = None
    dead_fraction: float | None = None
    saturated_fraction: float | None = None
    mean_field_std: float | None = None
    mean_field_grad_std: float | None = None
    kind: str = ""
    role: str = ""
    stream: str = ""
    input_std: float | None = None

    @property
    def judged(self) -> bool:
        """Whether the verdict follows this row (a model's probe judges only its streams' rows)."""
        return bool(self.stream)

    @property
    def preact_std(self) -> float:
        """Deprecated name of :attr:`output_std` (it always held the layer's or module's output)."""
        warnings.warn("LayerStats.preact_std is deprecated: it holds the output's std; use output_std",
                      DeprecationWarning, stacklevel=2)
        return self.output_std

    def to_dict(self) -> dict[str, Any]:
        return {key: _json_number(value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class NetworkProbe:
    """One network's probe: its layers' statistics and verdicts."""

    label: str
    layers: tuple[LayerStats, ...]
    input_std: float
    output_grad_std: float
    forward: Verdict
    backward: Verdict
    weight_std: float | None = None

    @property
    def verdict(self) -> Verdict:
        """The network's verdict: overflow anywhere, else the forward pass's, else the backward pass's."""
        for candidate in (self.forward, self.backward):
            if candidate.kind == "overflow":
                return candidate
        return self.forward if self.forward.kind != "stable" else self.backward

    def stream_references(self) -> dict[str, tuple[float | None, float | None]]:
        """A model's streams with their references (see :func:`stream_references`)."""
        return stream_references(self.layers)

    def series(self, quantity: str) -> np.ndarray:
        """One statistic along the layers (a :class:`LayerStats` field) as a float array, ``nan`` where missing."""
        numeric = [f.name for f in fields(LayerStats) if f.name not in ("name", "kind", "role", "stream")]
        if quantity not in numeric:
            raise unknown_name("quantity", quantity, numeric)
        return np.array(
            [np.nan if getattr(s, quantity) is None else getattr(s, quantity) for s in self.layers], dtype=float
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "weight_std": _json_number(self.weight_std),
            "verdict": self.verdict.to_dict(),
            "forward": self.forward.to_dict(),
            "backward": self.backward.to_dict(),
            "input_std": _json_number(self.input_std),
            "output_grad_std": _json_number(self.output_grad_std),
            "layers": [layer.to_dict() for layer in self.layers],
        }


@dataclass(frozen=True)
class ProbeReport:
    """The probes of one or more networks, with the settings that made them.

    ``table()`` is readable text, ``to_dict()`` JSON-able data, ``plot(path)``
    a picture (needs matplotlib: ``pip install 'berry[plot]'``).
    """

    networks: tuple[NetworkProbe, ...]
    config: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, label: str) -> NetworkProbe:
        for network in self.networks:
            if network.label == label:
                return network
        raise KeyError(f"no network labelled {label!r}; labels: {[n.label for n in self.networks]}")

    def __iter__(self) -> Iterator[NetworkProbe]:
        return iter(self.networks)

    def __len__(self) -> int:
        return len(self.networks)

    @property
    def verdicts(self) -> dict[str, str]:
        """Each network's verdict kind, by label."""
        return {network.label: network.verdict.kind for network in self.networks}

    def title(self) -> str:
        """One line saying what was probed."""
        return str(self.config.get("title", "berry probe"))

    @property
    def band(self) -> float:
        """A std beyond ``[start / band, start * band]`` has vanished or exploded (:data:`BAND`)."""
        return BAND

    @property
    def of_modules(self) -> bool:
        """True for a torch model's report (rows are module calls), False for simulated layers."""
        return "model" in self.config

    def table(self, layers: bool | None = None) -> str:
        """An aligned text table: one row per network, and with ``layers=True`` one table per network's layers.

        ``layers=None`` (default) shows the per-layer table for a torch model's report (one row per
        module call: the point of probing a model) and only the summary for simulated networks.
        """
        if layers is None:
            layers = self.of_modules
        blocks = [self.title(), ""]
        if self.of_modules:
            blocks.append(format_table(_module_summary_rows(self), _MODULE_SUMMARY_HEADER))
            blocks.append(_MODULE_EXPLANATION)
            for network in self.networks:
                blocks.append(f"\n{network.label}: forward {network.forward}; backward {network.backward}")
                blocks += [f"  judged against: {text}" for text in _references(network)]
                if layers:
                    blocks.append(format_table(_module_rows(network), _MODULE_HEADER))
            return "\n".join(blocks)
        blocks.append(format_table(_summary_rows(self), _summary_header(self)))
        outputs = "blocks' outputs" if self.config.get("residual") else "layers' outputs x W"
        blocks.append(
            f"\nverdict: the first layer where the std of the {outputs} (forward) or of their gradients (backward)\n"
            f"left [1/{BAND:g}, {BAND:g}] x its start (the input's std, the output gradient's); L1 = first layer."
        )
        if layers:
            for network in self.networks:
                blocks.append(f"\n{network.label}: {network.verdict}")
                blocks.append(format_table(_layer_rows(network), _LAYER_HEADER))
        return "\n".join(blocks)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able data: the settings, and every network with its verdicts and layers."""
        return {
            "config": {key: _json_value(value) for key, value in self.config.items()},
            "band": [1 / BAND, BAND],
            "networks": [network.to_dict() for network in self.networks],
        }

    def plot(self, path: str | None = None, **options: Any) -> Any:
        """Draw the forward and backward stds per layer (see :func:`berry.probe.plot.plot_probe`)."""
        from berry.probe.plot import plot_probe

        return plot_probe(self, path, **options)


_LAYER_HEADER = (
    "layer", "output std", "mean-field", "act std", "act mean", "grad std", "mean-field grad",
    "weight grad std", "dead", "saturated",
)


_MODULE_EXPLANATION = (
    f"\nverdict: per stream, the first row whose std left [1/{BAND:g}, {BAND:g}] x the stream's reference and stayed "
    "out\n(the median of it and the next two rows of its stream); streams: 'blocks', the signal after each repeated "
    "block,\nagainst what entered the first block (its gradient: against the last block's); 'layers', the other "
    "weighted layers\nof a plain stack, against the input of the first. Embeddings, norms, the head, activations and "
    "layers inside\nblocks are shown, not judged ('-' under 'stream'); 'x ref' is a std over its stream's reference."
)

_MODULE_HEADER = ("layer", "module", "role", "stream", "output std", "x ref", "grad std", "x ref",
                  "weight grad std", "act mean", "dead")


_MODULE_SUMMARY_HEADER = ("model", "forward", "backward", "judged rows", "input std", "output std",
                          "output grad std")


def _module_summary_rows(report: ProbeReport) -> list[tuple[Any, ...]]:
    return [(network.label, str(network.forward), str(network.backward),
             f"{sum(s.judged for s in network.layers)} of {len(network.layers)}", _short(network.input_std),
             _short(network.layers[-1].output_std), _short(network.output_grad_std))
            for network in report.networks]


def _references(network: NetworkProbe) -> list[str]:
    texts = [v.reference for v in (network.forward, network.backward) if v.reference]
    if network.forward.kind == "stable" and network.backward.kind == "stable":
        texts = texts[:1]  # both stable: the same sentence, listing every stream
    out: list[str] = []
    for text in texts:
        out += [part.strip() for part in text.split(";") if part.strip() and part.strip() not in out]
    return out


def _ratio(value: float | None, reference: float | None) -> float | str:
    if value is None or reference is None or not reference:
        return "-"
    return _short(value / reference)


def _module_rows(network: NetworkProbe) -> list[tuple[Any, ...]]:
    references = network.stream_references()
    rows = []
    for s in network.layers:
        forward, backward = references.get(s.stream, (None, None))
        rows.append((
            s.layer,
            f"{s.name} ({s.kind})" if s.kind else s.name,
            s.role or "-",
            s.stream or "-",
            _short(s.output_std),
            _ratio(s.output_std, forward) if s.stream else "-",
            _short(s.grad_std),
            _ratio(s.grad_std, backward) if s.stream else "-",
            _short(s.weight_grad_std),
            _short(s.act_mean),
            _short(s.dead_fraction),
        ))
    return rows


def _short(value: float | None) -> float | str:
    """Three significant digits for a table cell; '-' where there is no value."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return float(f"{value:.3g}")


def _summary_header(report: ProbeReport) -> tuple[str, ...]:
    last = max(len(network.layers) for network in report.networks)
    return ("init", "weight std", "verdict", "output std L1", f"output std L{last}", f"mean field L{last}",
            "grad std L1", f"dead units L{last}")


def _summary_rows(report: ProbeReport) -> list[tuple[Any, ...]]:
    rows = []
    for network in report.networks:
        first, last = network.layers[0], network.layers[-1]
        rows.append((
            network.label,
            _short(network.weight_std),
            str(network.verdict),
            _short(first.output_std),
            _short(last.output_std),
            _short(last.mean_field_std),
            _short(first.grad_std),
            _short(last.dead_fraction),
        ))
    return rows


def _layer_rows(network: NetworkProbe) -> list[tuple[Any, ...]]:
    return [
        (
            s.name if s.kind in ("", "dense", "conv") else f"{s.name} ({s.kind})",
            _short(s.output_std),
            _short(s.mean_field_std),
            _short(s.act_std),
            _short(s.act_mean),
            _short(s.grad_std),
            _short(s.mean_field_grad_std),
            _short(s.weight_grad_std),
            _short(s.dead_fraction),
            _short(s.saturated_fraction),
        )
        for s in network.layers
    ]


def _json_number(value: Any) -> Any:
    """Floats for JSON: inf and nan become strings, which every JSON parser accepts."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, (float, np.floating, np.integer)):
        return _json_number(value)
    return str(value)


def stream_references(layers: Sequence[LayerStats]) -> dict[str, tuple[float | None, float | None]]:
    """A model's streams (see :mod:`berry.probe.streams`), each with its forward reference (the std that entered
    its first row) and its backward one (the gradient at its last row that has one)."""
    references: dict[str, tuple[float | None, float | None]] = {}
    for stream in dict.fromkeys(s.stream for s in layers if s.stream):
        rows = [s for s in layers if s.stream == stream]
        grads = [s.grad_std for s in rows if s.grad_std is not None]
        references[stream] = (rows[0].input_std, grads[-1] if grads else None)
    return references


# --- verdicts ----------------------------------------------------------------------------------


def judge(stds: Sequence[float], reference: float, *, direction: str, layers: Sequence[int] | None = None) -> Verdict:
    """The verdict for a std along a pass, compared with its starting value ``reference``.

    ``stds`` are in the pass's order (the last layer first for a backward
    pass); ``layers`` are their layer numbers (default 1, 2, ...). A std that
    is not finite anywhere gives ``overflow`` at the first such layer (the
    worst outcome wins, even after the std has left the band); otherwise the
    first std above ``BAND * reference`` gives ``exploding`` and the first
    below ``reference / BAND`` ``vanishing``.

    >>> str(judge([1.0, 0.5, 0.05], 1.0, direction="forward"))
    'vanishing at layer 3 (forward)'
    >>> str(judge([1.0, 20.0, float("inf")], 1.0, direction="forward"))
    'overflow at layer 3 (forward)'
    >>> judge([1.0, 2.0], 1.0, direction="forward").kind
    'stable'
    """
    numbers = list(range(1, len(stds) + 1)) if layers is None else list(layers)
    if len(numbers) != len(stds):
        raise ValueError(f"layers has {len(numbers)} entries for {len(stds)} stds; they must match")
    if not math.isfinite(reference):
        return Verdict("overflow", numbers[0] if numbers else None, direction)
    for layer, std in zip(numbers, stds, strict=True):
        if not math.isfinite(std):
            return Verdict("overflow", layer, direction)
    for layer, std in zip(numbers, stds, strict=True):
        if std > BAND * reference:
            return Verdict("exploding", layer, direction)
        if std < reference / BAND:
            return Verdict("vanishing", layer, direction)
    return Verdict("stable")

"""Signal-propagation probe: watch a deep network's signal explode or vanish, layer by layer.

The seed's whole argument is that weights that are too large make the signal
and its gradients explode, and weights that are too small make them vanish.
:func:`run` shows it: it builds deep networks whose weights are drawn with
:func:`berry.sample` (one rule per network, keyed by ``seed`` and the
parameter's name ``f"layer{i}.weight"``, so every run is reproducible),
propagates a batch of standard normal inputs forward and a standard normal
output gradient backward (exact backpropagation in NumPy), and reports per
layer

* the std of the pre-activations ``h_l`` and of the activations ``x_l``,
* the std of the gradients with respect to the pre-activations
  (``dL/dh_l``) and to the weights (``dL/dW_l``),
* the fraction of dead units (zero derivative on the whole batch) and of
  saturated entries (derivative under a tenth of its peak),
* the mean-field prediction of the pre-activation std and of its gradient's
  std, beside the measurement,

and one verdict per network: ``stable``, ``vanishing`` or ``exploding`` (with
the first layer where a std left ``[1/10, 10]`` times its starting value:
the input's std going forward, the output gradient's going backward), or
``overflow`` (inf or NaN).

The networks
------------
``arch="mlp"``: ``depth`` dense layers of ``width`` units, no biases (zero
biases are the usual initialization),

.. math::

    h_l = x_{l-1} W_l, \\qquad x_l = f(h_l),

with ``W_l`` of shape ``(width, width)``. With ``residual=True`` each layer
is a pre-activation residual block (He et al. 2016, "Identity Mappings in
Deep Residual Networks") with branch scale ``alpha`` (``branch_scale``,
default 1):

.. math::

    h_l = h_{l-1} + \\alpha\\, f(h_{l-1})\\, W_l, \\qquad h_0 = x_0,

so the stream ``h_l`` is what the next activation sees, and what is reported
as the pre-activation. (The branch ends in a weight, so it adds no mean: a
branch ending in a ReLU would pile its positive mean onto the stream and
explode whatever the scale.) ``arch="conv"``: the same with ``W_l`` a
``kernel_size`` x ``kernel_size`` convolution over ``width`` channels on
``image_size`` x ``image_size`` images (channels last), with circular
padding so that every position sees a full receptive field, as in the
mean-field theory of convolutional networks (Xiao et al. 2018, "Dynamical
Isometry and a Mean Field Theory of CNNs"). The rule sees the kernel's
shape ``(k, k, width, width)``, so its fans include the receptive field.

The loss is ``L = sum(y * r)`` with ``y`` the output (``x_L``, or the
stream ``h_L``) and ``r`` standard normal (drawn from the same keyed stream),
so ``dL/dy = r``: a random direction, which gives the
backward pass the statistics the theory assumes.

Precision: the networks run in float32, as they would in training (so
``overflow`` means what it would mean there); every statistic is
accumulated in float64. Pass ``dtype="float64"`` for more headroom.

The mean field
--------------
With ``sigma_w^2 = fan_in * std^2`` (Poole et al. 2016, "Exponential
expressivity in deep neural networks through transient chaos"; Schoenholz
et al. 2017, "Deep Information Propagation"):

.. math::

    q_l = \\sigma_w^2\\, p_{l-1}, \\qquad
    p_l = \\mathbb{E}_{z\\sim N(0,1)}\\big[f(\\sqrt{q_l}\\, z)^2\\big]

where ``p`` is the activations' second moment (``p_0 = 1``). Backward, with
``sigma_o^2 = fan_out * std^2``, under the gradient-independence assumption
(Schoenholz et al. 2017), the gradients' variance
``r_l = E[(dL/dh_l)^2]`` follows ``r_L = E[f'^2]_L`` and

.. math::

    r_{l-1} = \\sigma_o^2\\, \\mathbb{E}\\big[f'(\\sqrt{q_{l-1}}\\, z)^2\\big]\\, r_l .

For the residual blocks the stream's variance and its gradient's follow

.. math::

    q_l = q_{l-1} + \\alpha^2 \\sigma_w^2\\, \\mathbb{E}\\big[f(\\sqrt{q_{l-1}}\\, z)^2\\big], \\qquad
    r_{l-1} = r_l \\big(1 + \\alpha^2 \\sigma_o^2\\, \\mathbb{E}\\big[f'(\\sqrt{q_{l-1}}\\, z)^2\\big]\\big),

with ``q_0 = 1`` and ``r_L = 1``: without a branch scale ReLU's stream
doubles its variance at every block; with ``alpha = 1/sqrt(depth)`` it grows
by at most ``e`` (Hanin & Rolnick 2018, "How to Start Training: The Effect of
Initialization and Architecture").

The expectations use
Gauss-Hermite quadrature; where the activation has kinks, the line is cut at
them and each piece gets a Gauss-Legendre rule instead (a single
Gauss-Hermite rule converges slowly across a kink).

Examples
--------
>>> from berry import probe
>>> report = probe.run(["xavier", "he"], depth=20, width=64, batch_size=32)
>>> report.verdicts
{'xavier': 'vanishing', 'he': 'stable'}
>>> report["xavier"].verdict.layer <= 10
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cache
from itertools import pairwise
from typing import Any

import numpy as np

from berry._format import format_table
from berry._validation import check_choice, check_int, check_positive, check_seed, unknown_name

__all__ = [
    "BAND",
    "VERDICTS",
    "LayerStats",
    "MeanField",
    "NetworkProbe",
    "ProbeReport",
    "Verdict",
    "default_inits",
    "judge",
    "mean_field",
    "run",
]

#: A std more than this factor away from its starting value (either way) has exploded or vanished.
BAND = 10.0
#: The possible verdicts, from best to worst.
VERDICTS = ("stable", "vanishing", "exploding", "overflow")
ARCHS = ("mlp", "conv")
DTYPES = ("float32", "float64")

# Defaults that depend on the architecture: a convolution costs kernel_size**2 * image_size**2 times more.
_DEFAULT_WIDTH = {"mlp": 256, "conv": 64}
_DEFAULT_BATCH = {"mlp": 128, "conv": 8}

# A derivative under this fraction of the activation's peak slope counts as saturated.
_SATURATION = 0.1
_HERMITE_POINTS = 100  # even: no node at 0, where most kinks sit
_LEGENDRE_POINTS = 64
_TAIL = 12.0  # |z| beyond this carries a normal mass of 1e-33: the pieces stop there


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

    def __str__(self) -> str:
        if self.kind == "stable":
            return "stable"
        return f"{self.kind} at layer {self.layer} ({self.direction})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "layer": self.layer, "direction": self.direction}


@dataclass(frozen=True)
class LayerStats:
    """Statistics of one layer (or, for a torch model, one module).

    ``preact_std`` is the std of the layer's output before the activation
    (a residual block's output stream; a torch module's output); ``act_std``
    and ``act_mean`` describe the layer's activations (a residual block's
    ``f`` of its input stream); ``grad_std`` is the std of the loss gradient
    with respect to ``preact``; ``weight_grad_std`` that of the gradient with respect to
    the layer's weight. ``dead_fraction``: units whose activation derivative
    is zero on the whole batch; ``saturated_fraction``: entries where it is
    under a tenth of its peak (for ReLU this counts the off half).
    ``mean_field_std`` and ``mean_field_grad_std`` are the mean-field
    predictions of ``preact_std`` and ``grad_std``. ``None`` where a quantity
    does not apply.
    """

    layer: int
    name: str
    preact_std: float
    act_std: float | None = None
    act_mean: float | None = None
    grad_std: float | None = None
    weight_grad_std: float | None = None
    dead_fraction: float | None = None
    saturated_fraction: float | None = None
    mean_field_std: float | None = None
    mean_field_grad_std: float | None = None
    kind: str = ""

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

    def series(self, quantity: str) -> np.ndarray:
        """One statistic along the layers (a :class:`LayerStats` field) as a float array, ``nan`` where missing."""
        numeric = [f.name for f in fields(LayerStats) if f.name not in ("name", "kind")]
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

    def table(self, layers: bool | None = None) -> str:
        """An aligned text table: one row per network, and with ``layers`` one table per network's layers.

        ``layers=None`` shows the layers when there is a single network.
        """

        show_layers = len(self.networks) == 1 if layers is None else layers
        blocks = [self.title(), ""]
        blocks.append(format_table(_summary_rows(self), _summary_header(self)))
        blocks.append(
            f"\nverdict: the first layer where the std of the pre-activations (forward) or of their gradients "
            f"(backward)\nleft [1/{BAND:g}, {BAND:g}] x its start (the input's std, the output gradient's); "
            "L1 = first layer."
        )
        if show_layers:
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
        """Draw the forward and backward stds per layer (see :func:`berry.plot.plot_probe`)."""
        from berry.plot import plot_probe

        return plot_probe(self, path, **options)


_LAYER_HEADER = (
    "layer", "pre-act std", "mean-field", "act std", "act mean", "grad std", "mean-field grad",
    "weight grad std", "dead", "saturated",
)


def _short(value: float | None) -> float | str:
    """Three significant digits for a table cell; '-' where there is no value."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return float(f"{value:.3g}")


def _summary_header(report: ProbeReport) -> tuple[str, ...]:
    last = max(len(network.layers) for network in report.networks)
    return ("init", "weight std", "verdict", "pre-act std L1", f"pre-act std L{last}", f"mean field L{last}",
            "grad std L1", f"dead units L{last}")


def _summary_rows(report: ProbeReport) -> list[tuple[Any, ...]]:
    rows = []
    for network in report.networks:
        first, last = network.layers[0], network.layers[-1]
        rows.append((
            network.label,
            _short(network.weight_std),
            str(network.verdict),
            _short(first.preact_std),
            _short(last.preact_std),
            _short(last.mean_field_std),
            _short(first.grad_std),
            _short(last.dead_fraction),
        ))
    return rows


def _layer_rows(network: NetworkProbe) -> list[tuple[Any, ...]]:
    return [
        (
            s.name if s.kind in ("", "dense", "conv") else f"{s.name} ({s.kind})",
            _short(s.preact_std),
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


# --- mean field --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeanField:
    """Mean-field predictions per layer (arrays of length ``depth``).

    ``preact_var``: ``q_l`` (the stream's variance for residual blocks);
    ``act_mean``, ``act_second_moment``: the layer's activations ``f``
    (for a residual block, of the stream entering it); ``grad_var``:
    ``E[(dL/dh_l)^2]``.
    """

    preact_var: np.ndarray
    act_mean: np.ndarray
    act_second_moment: np.ndarray
    grad_var: np.ndarray


@cache
def _gauss_rule(kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "hermite":
        nodes, weights = np.polynomial.hermite_e.hermegauss(_HERMITE_POINTS)
        return nodes, weights / math.sqrt(2 * math.pi)  # probabilists' Hermite: weights sum to sqrt(2 pi)
    return np.polynomial.legendre.leggauss(_LEGENDRE_POINTS)


def _quadrature(kinks: Sequence[float], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E over z ~ N(0, 1) of a function of ``scale * z`` with kinks at ``kinks``."""
    cuts = sorted({k / scale for k in kinks if scale > 0 and abs(k / scale) < _TAIL})
    if not cuts:
        return _gauss_rule("hermite")
    unit_nodes, unit_weights = _gauss_rule("legendre")
    edges = [-_TAIL, *cuts, _TAIL]
    all_nodes, all_weights = [], []
    for low, high in pairwise(edges):
        half = (high - low) / 2
        nodes = low + half * (unit_nodes + 1)
        all_nodes.append(nodes)
        all_weights.append(half * unit_weights * np.exp(-nodes * nodes / 2) / math.sqrt(2 * math.pi))
    return np.concatenate(all_nodes), np.concatenate(all_weights)


def _expectations(activation: Any, variance: float) -> tuple[float, float, float]:
    """E[f], E[f^2] and E[f'^2] at a pre-activation N(0, variance)."""
    if not math.isfinite(variance):
        return math.nan, math.inf, math.nan
    scale = math.sqrt(variance)
    nodes, weights = _quadrature(activation.kinks, scale)
    with np.errstate(all="ignore"):
        points = scale * nodes
        values = np.asarray(activation.fn(points), dtype=np.float64)
        slopes = np.asarray(activation.derivative(points), dtype=np.float64)
        return (
            float(np.dot(weights, values)),
            float(np.dot(weights, values * values)),
            float(np.dot(weights, slopes * slopes)),
        )


def mean_field(
    activation: Any,
    sigma_w2_in: Sequence[float],
    sigma_w2_out: Sequence[float] | None = None,
    *,
    residual: bool = False,
    branch_scale: float = 1.0,
    input_second_moment: float = 1.0,
) -> MeanField:
    """Iterate the mean-field variance map through a deep network.

    Poole et al. 2016 ("Exponential expressivity in deep neural networks
    through transient chaos") and Schoenholz et al. 2017 ("Deep Information
    Propagation"); see the module documentation for the residual and backward
    terms.

    .. math::

        q_l = \\sigma_{w,l}^2\\, \\mathbb{E}_{z \\sim N(0,1)}\\big[f(\\sqrt{q_{l-1}}\\, z)^2\\big]

    Parameters
    ----------
    activation:
        A name or callable for :func:`berry.get_activation`, or an ``Activation``.
    sigma_w2_in, sigma_w2_out:
        Per layer, ``fan_in * std^2`` and ``fan_out * std^2`` of the weights
        (``sigma_w2_out`` defaults to ``sigma_w2_in``: square layers).
    residual, branch_scale:
        ``x_l = x_{l-1} + branch_scale * f(h_l)`` instead of ``x_l = f(h_l)``.
    input_second_moment:
        ``E[x_0^2]`` of the input.

    Examples
    --------
    >>> mf = mean_field("relu", [2.0] * 3)        # He: q stays at 2
    >>> [round(float(v), 12) for v in mf.preact_var]
    [2.0, 2.0, 2.0]
    >>> round(float(mean_field("tanh", [1.0] * 50).preact_var[-1]), 4)    # Xavier: q ~ 1/(2l)
    0.0104
    """
    from berry.activations import get_activation

    act = get_activation(activation)
    inward = [check_positive(f"sigma_w2_in[{i}]", v, allow_zero=True) for i, v in enumerate(sigma_w2_in)]
    outward = inward if sigma_w2_out is None else [float(v) for v in sigma_w2_out]
    if len(outward) != len(inward):
        raise ValueError(f"sigma_w2_out has {len(outward)} layers, sigma_w2_in {len(inward)}; they must match")
    alpha = float(branch_scale) if residual else 1.0
    depth = len(inward)
    q, m, p, slope_square = (np.empty(depth) for _ in range(4))
    if residual:
        # The stream: h_l = h_{l-1} + alpha f(h_{l-1}) W_l. Its mean stays 0: every branch ends in a weight.
        stream = float(input_second_moment)
        for layer in range(depth):
            m[layer], p[layer], slope_square[layer] = _expectations(act, stream)
            stream = stream + alpha * alpha * inward[layer] * p[layer]
            q[layer] = stream
    else:
        second = float(input_second_moment)
        for layer in range(depth):
            q[layer] = inward[layer] * second
            m[layer], p[layer], slope_square[layer] = _expectations(act, float(q[layer]))
            second = p[layer]
    grad_var = np.empty(depth)
    if residual:
        incoming = 1.0  # E[(dL/dh_L)^2]
        for layer in reversed(range(depth)):
            grad_var[layer] = incoming
            incoming *= 1.0 + alpha * alpha * outward[layer] * slope_square[layer]
    else:
        incoming = 1.0  # E[(dL/dx_L)^2]
        for layer in reversed(range(depth)):
            grad_var[layer] = slope_square[layer] * incoming
            incoming = outward[layer] * grad_var[layer]
    return MeanField(q, m, p, grad_var)


# --- the networks ------------------------------------------------------------------------------


@dataclass
class _Network:
    """The layer algebra of one architecture: weight shapes, forward and backward products."""

    arch: str
    width: int
    kernel_size: int
    image_size: int

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.arch == "mlp":
            return (self.width, self.width)
        return (self.kernel_size, self.kernel_size, self.width, self.width)

    def input_shape(self, batch: int) -> tuple[int, ...]:
        if self.arch == "mlp":
            return (batch, self.width)
        return (batch, self.image_size, self.image_size, self.width)

    def _offsets(self) -> list[tuple[int, int, int, int]]:
        half = self.kernel_size // 2
        return [(i, j, i - half, j - half) for i in range(self.kernel_size) for j in range(self.kernel_size)]

    def forward(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """``x W``, or the circular convolution ``h[b, y, x] = sum_k x[b, y + dy, x + dx] K[dy, dx]``."""
        if self.arch == "mlp":
            return x @ weight
        # One matrix product per kernel offset: the same work as im2col without its k*k-fold copy.
        out = np.zeros((*x.shape[:-1], weight.shape[-1]), dtype=x.dtype)
        for i, j, dy, dx in self._offsets():
            out += np.roll(x, (-dy, -dx), axis=(1, 2)) @ weight[i, j]
        return out

    def backward(self, grad: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """The gradient with respect to the input, given the gradient ``grad`` of the output."""
        if self.arch == "mlp":
            return grad @ weight.T
        out = np.zeros((*grad.shape[:-1], weight.shape[-2]), dtype=grad.dtype)
        for i, j, dy, dx in self._offsets():
            out += np.roll(grad @ weight[i, j].T, (dy, dx), axis=(1, 2))
        return out

    def weight_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """The gradient with respect to the weight."""
        if self.arch == "mlp":
            return x.T @ grad
        rows = grad.reshape(-1, grad.shape[-1])
        out = np.empty((self.kernel_size, self.kernel_size, x.shape[-1], grad.shape[-1]), dtype=grad.dtype)
        for i, j, dy, dx in self._offsets():
            out[i, j] = np.roll(x, (-dy, -dx), axis=(1, 2)).reshape(-1, x.shape[-1]).T @ rows
        return out


def _std(values: np.ndarray) -> float:
    """The std of all entries, accumulated in float64 (nan or inf if an entry is not finite)."""
    with np.errstate(all="ignore"):
        return float(np.std(values, dtype=np.float64))


def _peak_slope(activation: Any) -> float:
    """The largest |f'| on [-10, 10]: the reference for 'saturated'."""
    grid = np.linspace(-10.0, 10.0, 4001)
    with np.errstate(all="ignore"):
        slopes = np.abs(np.asarray(activation.derivative(grid), dtype=np.float64))
    peak = float(np.nanmax(slopes)) if slopes.size else math.nan
    return peak if math.isfinite(peak) and peak > 0 else math.nan


def _label(init: Any) -> str:
    if isinstance(init, str):
        return init
    return str(getattr(init, "__name__", None) or type(init).__name__)


class _WeightSource:
    """The weights of every layer, via :func:`berry.sample`.

    A scale rule's weights are its std times the unit-std draw of the same
    key (``sample(..., std=1.0)``): normal, truncated normal and uniform are
    location-scale families, so this is the draw ``sample`` makes with the
    rule (equal to float64 rounding), and all the rules share one draw per
    layer instead of one each.
    """

    def __init__(self, network: _Network, distribution: str, seed: int, gain: float, dtype: str) -> None:
        self.network = network
        self.distribution = distribution
        self.seed = seed
        self.gain = gain
        self.dtype = dtype
        self._unit: dict[int, np.ndarray] = {}

    def rule_std(self, init: Any) -> float | None:
        """The std a scale rule gives the layers, or None for a structural initializer."""
        from berry.initializations import get_initialization

        if isinstance(init, str):
            try:
                rule = get_initialization(init)
            except ValueError:
                return None  # a structural initializer ("orthogonal", ...): berry.sample checks the name
        elif callable(init):
            rule = init
        else:
            raise TypeError(f"inits must hold rule names or rule callables, got {init!r}")
        shape = self.network.weight_shape
        return float(rule(shape=shape, gain=self.gain))

    def weight(self, layer: int, init: Any, std: float | None) -> np.ndarray:
        from berry.sampling import sample

        shape = self.network.weight_shape
        name = f"layer{layer}.weight"
        if std is None:
            drawn = sample(shape, init, distribution=self.distribution, seed=self.seed, name=name,
                           dtype="float64", gain=self.gain)
            return drawn.astype(self.dtype)
        if layer not in self._unit:
            self._unit[layer] = sample(shape, "lecun", distribution=self.distribution, seed=self.seed,
                                       name=name, dtype="float64", std=1.0)
        return (std * self._unit[layer]).astype(self.dtype)


def _probe_one(
    label: str,
    init: Any,
    std: float | None,
    source: _WeightSource,
    activation: Any,
    *,
    depth: int,
    residual: bool,
    alpha: float,
    inputs: np.ndarray,
    output_grad: np.ndarray,
    peak_slope: float,
) -> NetworkProbe:
    network = source.network
    dtype = np.dtype(source.dtype)
    fan_in = float(np.prod(network.weight_shape[:-1]))
    fan_out = float(np.prod(network.weight_shape[:-2] + network.weight_shape[-1:]))
    weights, sigma_in, sigma_out = [], [], []
    for layer in range(1, depth + 1):
        weight = source.weight(layer, init, std)
        weights.append(weight)
        # Structural initializers have no rule std: their realized mean square stands in.
        variance = std * std if std is not None else float(np.mean(np.square(weight, dtype=np.float64)))
        sigma_in.append(fan_in * variance)
        sigma_out.append(fan_out * variance)

    unit_axes = tuple(range(inputs.ndim - 1))
    saturation_level = _SATURATION * peak_slope if math.isfinite(peak_slope) else None
    stats: list[dict[str, Any]] = []
    weight_inputs, slopes = [], []  # what the backward pass needs: each weight's input, each f'
    scale = dtype.type(alpha)
    stream = inputs
    with np.errstate(all="ignore"):
        for weight in weights:
            if residual:
                slope = np.asarray(activation.derivative(stream), dtype=dtype)
                activated = np.asarray(activation.fn(stream), dtype=dtype)
                weight_inputs.append(activated)
                stream = stream + scale * network.forward(activated, weight)
                preact = stream
            else:
                weight_inputs.append(stream)
                preact = network.forward(stream, weight)
                slope = np.asarray(activation.derivative(preact), dtype=dtype)
                activated = np.asarray(activation.fn(preact), dtype=dtype)
                stream = activated
            slopes.append(slope)
            stats.append({
                "preact_std": _std(preact),
                "act_std": _std(activated),
                "act_mean": float(np.mean(activated, dtype=np.float64)),
                "dead_fraction": float(np.mean(np.all(slope == 0, axis=unit_axes))),
                "saturated_fraction": (
                    None if saturation_level is None else float(np.mean(np.abs(slope) < saturation_level))
                ),
            })
        grad = output_grad  # dL/d(output)
        for index in reversed(range(depth)):
            if residual:
                stats[index]["grad_std"] = _std(grad)  # dL/dh_l of the stream
                branch_grad = scale * grad
                stats[index]["weight_grad_std"] = _std(network.weight_gradient(weight_inputs[index], branch_grad))
                grad = grad + slopes[index] * network.backward(branch_grad, weights[index])
            else:
                delta = slopes[index] * grad  # dL/dh_l
                stats[index]["grad_std"] = _std(delta)
                stats[index]["weight_grad_std"] = _std(network.weight_gradient(weight_inputs[index], delta))
                grad = network.backward(delta, weights[index])

    theory = mean_field(
        activation, sigma_in, sigma_out, residual=residual, branch_scale=alpha,
        input_second_moment=float(np.mean(np.square(inputs, dtype=np.float64))),
    )
    layers = tuple(
        LayerStats(
            layer=index + 1,
            name=f"layer{index + 1}",
            mean_field_std=math.sqrt(theory.preact_var[index]),
            mean_field_grad_std=math.sqrt(theory.grad_var[index]),
            kind="conv" if network.arch == "conv" else "dense",
            **values,
        )
        for index, values in enumerate(stats)
    )
    input_std, output_grad_std = _std(inputs), _std(output_grad)
    return NetworkProbe(
        label=label,
        layers=layers,
        input_std=input_std,
        output_grad_std=output_grad_std,
        forward=judge([s.preact_std for s in layers], input_std, direction="forward"),
        backward=judge(
            [s.grad_std if s.grad_std is not None else math.nan for s in reversed(layers)],
            output_grad_std,
            direction="backward",
            layers=[s.layer for s in reversed(layers)],
        ),
        weight_std=std,
    )


def default_inits() -> list[str]:
    """Every registered scale rule (no aliases), in registration order: what ``run()`` compares."""
    from berry.initializations import list_initializations

    return list(list_initializations(aliases=False))


def run(
    inits: str | Callable[..., float] | Iterable[Any] | None = None,
    *,
    depth: int = 50,
    width: int | None = None,
    activation: Any = "relu",
    param: float | None = None,
    distribution: str = "normal",
    residual: bool = False,
    branch_scale: float | None = None,
    arch: str = "mlp",
    batch_size: int | None = None,
    seed: int = 0,
    gain: float | str = 1.0,
    kernel_size: int = 3,
    image_size: int = 8,
    dtype: str = "float32",
) -> ProbeReport:
    """Probe deep networks initialized with each rule in ``inits``, side by side.

    Builds the networks of the module documentation, runs a batch forward and
    its gradient backward, and reports each layer's statistics with the
    mean-field prediction beside them (Poole et al. 2016; Schoenholz et al.
    2017).

    .. math::

        q_l = \\sigma_w^2\\, \\mathbb{E}_{z\\sim N(0,1)}\\big[f(\\sqrt{q_{l-1}}\\, z)^2\\big],
        \\qquad \\sigma_w^2 = fan_{in}\\, \\sigma^2

    Also known as a signal-propagation or variance-propagation study.

    Parameters
    ----------
    inits:
        A rule name, a rule callable, a structural initializer name (e.g.
        ``"orthogonal"``), or a sequence of them. Default: every registered
        rule (see :func:`berry.list_initializations`).
    depth, width:
        Number of layers, and units (MLP) or channels (conv) per layer.
        ``width`` defaults to 256 for an MLP and 64 for a conv stack.
    activation, param:
        A name or callable for :func:`berry.get_activation`, and its parameter.
    distribution:
        ``"normal"``, ``"truncated_normal"`` or ``"uniform"``, as in :func:`berry.sample`.
    residual, branch_scale:
        Residual connections ``x_l = x_{l-1} + branch_scale * f(h_l)``;
        ``branch_scale`` defaults to 1 (try ``1 / sqrt(depth)``).
    arch:
        ``"mlp"`` or ``"conv"``.
    batch_size:
        Inputs per batch; default 128 (MLP) or 8 images (conv).
    seed:
        The key of every draw: weights ``f"layer{i}.weight"``, input
        ``"probe.input"``, output gradient ``"probe.output_grad"``.
    gain:
        Multiplier of every rule's std, or ``"auto"``: the activation's
        variance-preserving gain :func:`berry.gain` (with a fan-in rule such
        as ``lecun`` that is He's rule for ReLU).
    kernel_size, image_size:
        The conv stack's (odd) kernel size and square image size.
    dtype:
        ``"float32"`` (default, as in training) or ``"float64"``.

    Returns
    -------
    ProbeReport

    Examples
    --------
    >>> report = run("he", depth=10, width=32, activation="relu", seed=1)
    >>> report["he"].verdict.kind, len(report["he"].layers)
    ('stable', 10)
    """
    from berry.activations import get_activation
    from berry.sampling import sample

    arch = check_choice("arch", arch, ARCHS)
    dtype = check_choice("dtype", dtype, DTYPES)
    depth = check_int("depth", depth, minimum=1)
    width = _DEFAULT_WIDTH[arch] if width is None else check_int("width", width, minimum=1)
    batch_size = _DEFAULT_BATCH[arch] if batch_size is None else check_int("batch_size", batch_size, minimum=1)
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (a centred kernel), got {kernel_size}")
    image_size = check_int("image_size", image_size, minimum=1)
    seed = check_seed(seed)
    if not isinstance(residual, (bool, np.bool_)):
        raise TypeError(f"residual must be True or False, got {residual!r}")
    if branch_scale is not None and not residual:
        raise ValueError(f"branch_scale={branch_scale!r} needs residual=True")
    alpha = 1.0 if branch_scale is None else check_positive("branch_scale", branch_scale)
    act = get_activation(activation, param)
    if isinstance(gain, str) and gain.lower() == "auto":
        from berry.gains import gain as activation_gain

        gain = activation_gain(act)
    gain = check_positive("gain", gain)
    if inits is None:
        inits = default_inits()
    if isinstance(inits, str) or callable(inits):
        inits = [inits]
    init_list = list(inits)
    if not init_list:
        raise ValueError("inits is empty; give at least one rule name or callable")
    labels = [_label(init) for init in init_list]
    if len(set(labels)) != len(labels):
        raise ValueError(f"inits has repeated labels {labels}; each network needs its own")

    network = _Network(arch, width, kernel_size, image_size)
    source = _WeightSource(network, distribution, seed, gain, dtype)
    shape = network.input_shape(batch_size)
    inputs = sample(shape, "lecun", distribution="normal", seed=seed, name="probe.input", dtype=dtype, std=1.0)
    output_grad = sample(shape, "lecun", distribution="normal", seed=seed, name="probe.output_grad",
                         dtype=dtype, std=1.0)
    peak = _peak_slope(act)
    networks = []
    by_std: dict[float, NetworkProbe] = {}
    for label, init in zip(labels, init_list, strict=True):
        std = source.rule_std(init)
        if std is not None and std in by_std:
            # Same std, same unit draws: the very same network (Xavier, LeCun, geometric on square layers).
            networks.append(replace(by_std[std], label=label))
            continue
        probed = _probe_one(label, init, std, source, act, depth=depth, residual=bool(residual), alpha=alpha,
                            inputs=inputs, output_grad=output_grad, peak_slope=peak)
        if std is not None:
            by_std[std] = probed
        networks.append(probed)
    activation_label = act.name if act.param is None else f"{act.name}({act.param:g})"
    if arch == "mlp":
        shape_text = f"{depth}-layer {'residual ' if residual else ''}MLP, width {width}"
    else:
        shape_text = (f"{depth}-layer {'residual ' if residual else ''}conv stack, {width} channels, "
                      f"{kernel_size}x{kernel_size} kernels on {image_size}x{image_size} images")
    if residual:
        shape_text += f", branch scale {alpha:.3g}"
    title = (f"berry probe: {shape_text}, {activation_label}, {distribution} weights"
             f"{'' if gain == 1.0 else f' x gain {gain:.4g}'}, batch {batch_size}, seed {seed}, {dtype}")
    config = {
        "title": title,
        "inits": labels,
        "depth": depth,
        "width": width,
        "activation": act.name,
        "param": act.param,
        "distribution": distribution,
        "residual": bool(residual),
        "branch_scale": alpha if residual else None,
        "arch": arch,
        "batch_size": batch_size,
        "seed": seed,
        "gain": gain,
        "kernel_size": kernel_size if arch == "conv" else None,
        "image_size": image_size if arch == "conv" else None,
        "dtype": dtype,
    }
    return ProbeReport(tuple(networks), config)

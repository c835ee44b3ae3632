"""Run the probe: build a network per rule, propagate a batch forward and its gradient backward.

Memory is bounded whatever the depth. The weights are drawn from the keyed
stream when a layer needs them and drawn again on the way back (same bits),
and the backward pass keeps only what backpropagation needs: the layers are
cut into segments of about ``sqrt(depth)`` layers; the forward pass keeps the
signal entering each segment (a checkpoint), and the backward pass recomputes
one segment's activations from its checkpoint at a time (Griewank & Walther
2000, "Algorithm 799: revolve"; Chen et al. 2016, "Training Deep Nets with
Sublinear Memory Cost"). Shallow networks (all layers within 256 MiB) are kept
whole and not recomputed. A probe whose estimated peak exceeds ``max_memory``
(default: the memory the machine has available) is refused before it starts,
with the estimate in the message.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from berry._validation import check_choice, check_int, check_positive, check_seed
from berry.probe.mean_field import mean_field
from berry.probe.network import Network, WeightSource
from berry.probe.report import LayerStats, NetworkProbe, ProbeReport, judge

__all__ = ["ARCHS", "DTYPES", "default_inits", "memory_plan", "run"]

ARCHS = ("mlp", "conv")
DTYPES = ("float32", "float64")

# Defaults that depend on the architecture: a convolution costs kernel_size**2 * image_size**2 times more.
_DEFAULT_WIDTH = {"mlp": 256, "conv": 64}
_DEFAULT_BATCH = {"mlp": 128, "conv": 8}

# A derivative under this fraction of the activation's peak slope counts as saturated.
_SATURATION = 0.1
# Networks whose layers (weights and saved activations) fit here are kept whole: no recomputation.
_KEEP_WHOLE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class MemoryPlan:
    """How the probe of one network holds its memory: segment length and the estimated peak in bytes."""

    segment: int
    peak_bytes: int
    weight_bytes: int
    activation_bytes: int


def memory_plan(network: Network, batch_size: int, depth: int, dtype: str) -> MemoryPlan:
    """The segment length (layers recomputed together on the way back) and the estimated peak memory.

    A layer kept for the backward pass holds its weight ``W`` and two arrays
    of the batch's size ``A`` (the weight's input and the activation's
    derivative); a checkpoint holds one ``A``. Segments of ``s`` layers cost
    ``s (W + 2A) + ceil(depth / s) A``, smallest at ``s = sqrt(depth A / (W + 2A))``.
    The working set on top (a weight's gradient and float64 reductions, the
    inputs, the convolution's shifted copies) is counted as ``3 W + 8 A``, plus
    the float64 operands and result of one product (``Network`` sums in float64)
    for a float32 network.
    """
    itemsize = np.dtype(dtype).itemsize
    weight = math.prod(network.weight_shape) * itemsize
    activation = math.prod(network.input_shape(batch_size)) * itemsize
    per_layer = weight + 2 * activation
    if depth * per_layer <= _KEEP_WHOLE_BYTES:
        segment = depth
    else:
        segment = max(1, min(depth, round(math.sqrt(depth * activation / per_layer))))
    widened = 0 if itemsize == 8 else (weight + 3 * activation) * 8 // itemsize
    peak = segment * per_layer + math.ceil(depth / segment) * activation + 3 * weight + 8 * activation + widened
    return MemoryPlan(segment, peak, weight, activation)


def _available_memory() -> tuple[int | None, str]:
    """Bytes of memory the machine can give now (Linux MemAvailable, else physical memory), and its source."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "the memory available on this machine"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine's physical memory"
    except (AttributeError, OSError, ValueError):
        return None, "unknown"


def _gib(size: float) -> str:
    return f"{size / 2**30:.3g} GiB" if size >= 2**30 else f"{size / 2**20:.3g} MiB"


def _check_memory(plan: MemoryPlan, network: Network, batch_size: int, dtype: str, max_memory: Any) -> None:
    if max_memory is None:
        limit, source = _available_memory()
        if limit is None:
            return
    else:
        limit, source = int(check_positive("max_memory", max_memory)), "max_memory"
    if plan.peak_bytes <= limit:
        return
    shape = "x".join(map(str, network.weight_shape))
    raise MemoryError(
        f"this probe needs about {_gib(plan.peak_bytes)} of memory (each {shape} {dtype} weight is "
        f"{_gib(plan.weight_bytes)}, a batch of {batch_size} activations {_gib(plan.activation_bytes)}, "
        f"{plan.segment} layers kept at a time), more than {source} ({_gib(limit)}); lower width or "
        f"batch_size (berry probe --width, --batch-size) or raise max_memory (--max-memory GIB)"
    )


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


@dataclass
class _Pass:
    """What one network's passes share: the layer algebra, the activation and the block type."""

    network: Network
    activation: Any
    residual: bool
    scale: Any  # the branch scale, in the network's dtype
    dtype: np.dtype

    def layer(self, stream: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, ...]:
        """One layer forward: (next stream, the layer's output, its activations, the weight's input, f')."""
        act, dtype = self.activation, self.dtype
        if self.residual:
            slope = np.asarray(act.derivative(stream), dtype=dtype)
            activated = np.asarray(act.fn(stream), dtype=dtype)
            following = stream + self.scale * self.network.forward(activated, weight)
            return following, following, activated, activated, slope
        output = self.network.forward(stream, weight)
        slope = np.asarray(act.derivative(output), dtype=dtype)
        activated = np.asarray(act.fn(output), dtype=dtype)
        return activated, output, activated, stream, slope


def _probe_one(
    label: str,
    spec: Any,
    std: float | None,
    source: WeightSource,
    passes: _Pass,
    *,
    depth: int,
    segment: int,
    alpha: float,
    inputs: np.ndarray,
    output_grad: np.ndarray,
    peak_slope: float,
) -> NetworkProbe:
    network = source.network
    fan_in, fan_out = network.fans
    sigma_in, sigma_out = [], []
    unit_axes = tuple(range(inputs.ndim - 1))
    saturation_level = _SATURATION * peak_slope if math.isfinite(peak_slope) else None
    stats: list[dict[str, Any]] = []
    checkpoints: dict[int, np.ndarray] = {}  # first layer of a segment -> the stream entering it
    kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # the last segment's (weight, input, f')
    stream = inputs
    with np.errstate(all="ignore"):
        for index in range(depth):
            if index % segment == 0:
                checkpoints[index] = stream
                kept = []
            weight = source.weight(index + 1, spec)
            # Structural initializers have no rule std: their realized mean square stands in.
            variance = std * std if std is not None else float(np.mean(np.square(weight, dtype=np.float64)))
            sigma_in.append(fan_in * variance)
            sigma_out.append(fan_out * variance)
            stream, output, activated, weight_input, slope = passes.layer(stream, weight)
            kept.append((weight, weight_input, slope))
            stats.append({
                "output_std": _std(output),
                "act_std": _std(activated),
                "act_mean": float(np.mean(activated, dtype=np.float64)),
                "dead_fraction": float(np.mean(np.all(slope == 0, axis=unit_axes))),
                "saturated_fraction": (
                    None if saturation_level is None else float(np.mean(np.abs(slope) < saturation_level))
                ),
            })
        del stream, output, activated, weight_input, slope
        grad = output_grad  # dL/d(output of the last layer)
        last_segment = max(checkpoints)
        for start in sorted(checkpoints, reverse=True):
            stop = min(start + segment, depth)
            if start != last_segment:  # recompute this segment's activations from its checkpoint
                kept, replayed = [], checkpoints[start]
                for index in range(start, stop):
                    weight = source.weight(index + 1, spec)
                    replayed, _, _, weight_input, slope = passes.layer(replayed, weight)
                    kept.append((weight, weight_input, slope))
            del checkpoints[start]
            for index in reversed(range(start, stop)):
                weight, weight_input, slope = kept.pop()
                if passes.residual:
                    stats[index]["grad_std"] = _std(grad)  # dL/dh_l of the stream
                    branch_grad = passes.scale * grad
                    stats[index]["weight_grad_std"] = _std(network.weight_gradient(weight_input, branch_grad))
                    grad = grad + slope * network.backward(branch_grad, weight)
                else:
                    delta = slope * grad  # dL/dh_l
                    stats[index]["grad_std"] = _std(delta)
                    stats[index]["weight_grad_std"] = _std(network.weight_gradient(weight_input, delta))
                    grad = network.backward(delta, weight)

    theory = mean_field(
        passes.activation, sigma_in, sigma_out, residual=passes.residual, branch_scale=alpha,
        input_second_moment=float(np.mean(np.square(inputs, dtype=np.float64))),
    )
    layers = tuple(
        LayerStats(
            layer=index + 1,
            name=f"layer{index + 1}",
            mean_field_std=math.sqrt(theory.output_var[index]),
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
        forward=judge([s.output_std for s in layers], input_std, direction="forward"),
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
    max_memory: float | None = None,
) -> ProbeReport:
    """Probe deep networks initialized with each rule in ``inits``, side by side.

    Builds the networks of :mod:`berry.probe`, runs a batch forward and its
    gradient backward, and reports each layer's statistics with the
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
        Pre-activation residual blocks ``h_l = h_{l-1} + branch_scale * f(h_{l-1}) W_l``;
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
    max_memory:
        Bytes the probe may use; ``None`` (default): the memory the machine
        has available. A probe estimated to need more raises ``MemoryError``
        before it starts (depth costs little: see :mod:`berry.probe.runner`).

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

    network = Network(arch, width, kernel_size, image_size)
    source = WeightSource(network, distribution, seed, gain, dtype)
    specs = [source.spec(init) for init in init_list]  # every name and option checked before any work
    plan = memory_plan(network, batch_size, depth, dtype)
    _check_memory(plan, network, batch_size, dtype, max_memory)
    shape = network.input_shape(batch_size)
    inputs = sample(shape, "lecun", distribution="normal", seed=seed, name="probe.input", dtype=dtype, std=1.0)
    output_grad = sample(shape, "lecun", distribution="normal", seed=seed, name="probe.output_grad",
                         dtype=dtype, std=1.0)
    with np.errstate(over="ignore"):
        branch = np.dtype(dtype).type(alpha)  # the network multiplies in its own dtype
    if not (np.isfinite(branch) and branch > 0):
        raise ValueError(
            f"branch_scale={branch_scale!r} rounds to {float(branch)!r} in {np.dtype(dtype).name}, the network's dtype; "
            f"use a branch scale in [{float(np.finfo(dtype).smallest_subnormal):.3g}, {float(np.finfo(dtype).max):.3g}]"
        )
    passes = _Pass(network, act, bool(residual), branch, np.dtype(dtype))
    peak = _peak_slope(act)
    networks = []
    by_std: dict[float, NetworkProbe] = {}
    for label, spec in zip(labels, specs, strict=True):
        std = source.rule_std(spec)
        if std is not None and std in by_std:
            # Same std, same key, same law: the very same weights (Xavier, LeCun, geometric on square layers).
            networks.append(replace(by_std[std], label=label))
            continue
        probed = _probe_one(label, spec, std, source, passes, depth=depth, segment=plan.segment, alpha=alpha,
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

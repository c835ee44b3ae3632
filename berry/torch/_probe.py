"""Probe a real ``torch.nn.Module``: per-module std of outputs and gradients, and a verdict.

The torch counterpart of :func:`berry.probe.run`; it returns the same
:class:`~berry.probe.ProbeReport`, so ``table()``, ``to_dict()`` and
``plot()`` work alike.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from berry.probe.report import LayerStats, NetworkProbe, ProbeReport
from berry.probe.streams import judge_streams

__all__ = ["ModelInputError", "before_and_after", "find_blocks", "probe"]

# Modules whose outputs put channels on axis 1 even in 3-D (N, C, L); elsewhere a 3-D output is (N, T, features).
_CHANNELS_FIRST = (
    torch.nn.modules.conv._ConvNd,
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
    torch.nn.modules.pooling._MaxPoolNd,
    torch.nn.modules.pooling._AvgPoolNd,
    torch.nn.GroupNorm,
)


def _first_tensor(value: Any) -> torch.Tensor | None:
    """The tensor a module or model returned: itself, the first of a tuple, or a mapping's 'logits'/first."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, Mapping):
        if "logits" in value and isinstance(value["logits"], torch.Tensor):
            return value["logits"]
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _std(tensor: torch.Tensor) -> float:
    if tensor.numel() == 0:
        return math.nan
    return float(tensor.detach().to(torch.float64).std(unbiased=False))


def _unit_axis(module: torch.nn.Module, output: torch.Tensor) -> int:
    if output.dim() >= 4 or (output.dim() == 3 and isinstance(module, _CHANNELS_FIRST)):
        return 1
    return output.dim() - 1


def _dead_fraction(module: torch.nn.Module, output: torch.Tensor) -> float | None:
    """Units whose output is exactly zero for the whole batch (a ReLU that never fires)."""
    if output.dim() < 2 or output.numel() == 0:
        return None
    axis = _unit_axis(module, output)
    alive = (output.detach() != 0).movedim(axis, 0).reshape(output.shape[axis], -1).any(dim=1)
    return float(1.0 - alive.to(torch.float64).mean())


def _call(model: torch.nn.Module, batch: Any) -> Any:
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (list, tuple)):
        return model(*batch)
    return model(batch)


def _random_direction(shape: tuple[int, ...], seed: int, like: torch.Tensor) -> torch.Tensor:
    from berry.sampling import sample

    values = sample(shape, "lecun", std=1.0, seed=seed, name="probe.output_grad", dtype="float64")
    return torch.from_numpy(values).to(device=like.device, dtype=like.dtype)


_NORMS = (
    torch.nn.modules.batchnorm._NormBase,
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
    torch.nn.LocalResponseNorm,
    *((torch.nn.RMSNorm,) if hasattr(torch.nn, "RMSNorm") else ()),
)
_CONTAINERS = (torch.nn.ModuleList, torch.nn.Sequential)


def _is_norm(module: torch.nn.Module) -> bool:
    """A norm layer: torch's, or one written by hand whose class says so (RMSNorm, LlamaRMSNorm, ...)."""
    return isinstance(module, _NORMS) or type(module).__name__.endswith("Norm")


def find_blocks(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The repeated blocks of ``model``, by name: what the stream between blocks is measured after.

    A block is a module with children, held in a ``ModuleList`` or ``Sequential`` beside at least one
    other of its class (a transformer's layers, a ResNet stage's basic blocks); where blocks nest
    (ConvNeXt's stages of blocks), the innermost ones.
    """
    candidates: dict[str, torch.nn.Module] = {}
    for name, container in model.named_modules():
        if not isinstance(container, _CONTAINERS):
            continue
        children = list(container.named_children())
        classes = [type(child) for _, child in children]
        for child_name, child in children:
            if any(True for _ in child.children()) and classes.count(type(child)) >= 2:
                candidates[f"{name}.{child_name}" if name else child_name] = child
    return {name: module for name, module in candidates.items()
            if not any(other.startswith(name + ".") for other in candidates)}


class _Gradient:
    """The std of the gradient that reaches one tensor, filled in by the backward pass."""

    __slots__ = ("std",)

    def __init__(self) -> None:
        self.std: float | None = None

    def __call__(self, grad: torch.Tensor) -> None:
        self.std = _std(grad)


class _Call:
    """What one module call produced: statistics of its input and output, and slots for their gradients."""

    __slots__ = ("block", "dead_fraction", "input", "input_grad", "input_std", "kind", "mean", "module", "name",
                 "output", "output_grad", "output_std", "weight_grad_std")

    def __init__(self, name: str, module: torch.nn.Module, block: bool) -> None:
        self.name, self.module, self.block, self.kind = name, module, block, type(module).__name__
        self.input: torch.Tensor | None = None
        self.output: torch.Tensor | None = None
        self.input_std: float | None = None
        self.output_std = math.nan
        self.mean = math.nan
        self.dead_fraction: float | None = None
        self.input_grad: _Gradient | None = None
        self.output_grad: _Gradient | None = None
        self.weight_grad_std: float | None = None


class _Recorder:
    """Forward hooks on a model's leaf modules and repeated blocks, and tensor hooks for their gradients.

    Each distinct tensor gets one gradient hook, shared by every call that reads or returns it (a block's
    output is the next block's input). The statistics are taken when the hook runs: an in-place module
    downstream (``ReLU(inplace=True)``) would overwrite the output afterwards.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.blocks = find_blocks(model)
        self.leaves = [(name, module) for name, module in model.named_modules()
                       if not any(True for _ in module.children())]
        if not self.leaves:
            raise ValueError(f"model {type(model).__name__} has no modules to probe")
        self.calls: list[_Call] = []
        self._count: dict[str, int] = {}
        self._gradients: dict[int, tuple[torch.Tensor, _Gradient]] = {}  # keeps each tensor alive: ids stay unique
        self._handles: list[Any] = []

    def attach(self) -> None:
        watched = [*self.leaves, *self.blocks.items()]
        self._handles = [module.register_forward_hook(self._hook(name, name in self.blocks))
                         for name, module in watched]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for call in self.calls:
            call.input = call.output = None
        self._gradients.clear()

    def _gradient(self, tensor: torch.Tensor) -> _Gradient | None:
        key = id(tensor)
        if key not in self._gradients:
            slot = _Gradient()
            self._gradients[key] = (tensor, slot)
            if tensor.requires_grad:
                tensor.register_hook(slot)
        return self._gradients[key][1]

    def _hook(self, name: str, block: bool) -> Callable[..., None]:
        def forward_hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            if tensor is None or not tensor.is_floating_point() or tensor.numel() == 0:
                return
            self._count[name] = self._count.get(name, 0) + 1
            label = name or type(module).__name__
            if self._count[name] > 1:
                label += f"#{self._count[name]}"  # a module used twice (shared weights) gets a row per call
            call = _Call(label, module, block)
            call.output, call.output_std = tensor, _std(tensor)
            call.mean = float(tensor.detach().to(torch.float64).mean())
            call.output_grad = self._gradient(tensor)
            if not block:
                call.dead_fraction = _dead_fraction(module, tensor)
            entering = _first_tensor(inputs)
            if entering is not None and entering.is_floating_point() and entering.numel():
                call.input, call.input_std = entering, _std(entering)
                call.input_grad = self._gradient(entering)
            elif entering is not None:
                call.input = entering
            self.calls.append(call)

        return forward_hook

    def read_weight_grads(self) -> None:
        for call in self.calls:
            weight = getattr(call.module, "weight", None)
            grad = weight.grad if isinstance(weight, torch.nn.Parameter) else None
            call.weight_grad_std = None if grad is None else _std(grad)

    def _stream_after(self, index: int) -> tuple[float, float | None]:
        """The std and gradient std of the stream after the block call ``index``.

        The block's output when a later call reads it (a transformer layer, a ResNet block); otherwise the block
        is a residual branch added outside it (``x + block(x)``), and the stream is what the next call reads, if
        it has the shape of the block's input.
        """
        call = self.calls[index]
        later = self.calls[index + 1:]
        following = later[0] if later else None
        # A pooled or reshaped signal after the last block (``x.mean((2, 3))``) is not the stream: same shape only.
        if (following is None or following.input_std is None or following.input is None or call.input is None
                or following.input.shape != call.input.shape
                or any(other.input is call.output for other in later)):
            return call.output_std, None if call.output_grad is None else call.output_grad.std
        return following.input_std, None if following.input_grad is None else following.input_grad.std

    def _role(self, call: _Call, head: _Call | None) -> str:
        inside = any(call.name.startswith(name + ".") for name in self.blocks)
        weighted = any(True for _ in call.module.parameters(recurse=False))
        if call.block:
            return "block"
        if _is_norm(call.module):
            return "norm"
        if isinstance(call.module, (torch.nn.Embedding, torch.nn.EmbeddingBag)) or (
                weighted and call.input is not None and not call.input.is_floating_point()):
            return "embedding"
        if call is head:
            return "head"
        if weighted:
            return "branch" if inside else "layer"
        return "other"

    def rows(self) -> tuple[LayerStats, ...]:
        leaves = [c for c in self.calls if not c.block and any(True for _ in c.module.parameters(recurse=False))]
        last = leaves[-1] if leaves else None
        head = last if last is not None and not _is_norm(last.module) and not any(
            last.name.startswith(name + ".") for name in self.blocks) else None
        rows = []
        for index, call in enumerate(self.calls):
            role = self._role(call, head)
            output_std, grad_std = call.output_std, None if call.output_grad is None else call.output_grad.std
            if role == "block":
                output_std, grad_std = self._stream_after(index)
            rows.append(LayerStats(
                layer=index + 1, name=call.name, kind=call.kind, output_std=output_std, act_mean=call.mean,
                grad_std=grad_std, weight_grad_std=call.weight_grad_std, dead_fraction=call.dead_fraction,
                role=role, stream={"block": "blocks", "layer": "layers"}.get(role, ""), input_std=call.input_std,
            ))
        return tuple(rows)


def probe(
    model: torch.nn.Module,
    batch: Any,
    *,
    loss: Callable[[Any], torch.Tensor] | None = None,
    seed: int = 0,
) -> ProbeReport:
    """Run one forward and one backward pass through ``model`` and report every module call's statistics.

    Hooks on the leaf modules (those without children) and on the repeated
    blocks (:func:`find_blocks`) record, per call, the std and mean of the
    module's output, the std of what entered it, the std of the loss gradient
    with respect to that output, the std of its ``weight``'s gradient, and the
    fraction of dead units (output exactly zero on the whole batch, along the
    feature axis: the last one, or axis 1 for images and convolutions). Each
    row gets a role (embedding, norm, head, block, layer, branch, other), and
    the verdict (:func:`berry.probe.streams.judge_streams`) follows two
    streams, each against its own reference: the signal after each repeated
    block against what entered the first block, and the other weighted layers
    of a plain stack against the input of the first; backward, their gradients
    against the gradient at the stream's end. Embeddings, norms, the head and
    the layers inside blocks are reported, not judged. A stream fails at the
    first row whose ratio leaves the band and stays out (the median of it and
    the next two rows of its stream): one module's dip is not a verdict. The
    signal study behind it is that of Poole et al. 2016, Schoenholz et al.
    2017 and, for residual streams, Hanin & Rolnick 2018.

    .. math::

        \\text{exploding or vanishing where } \\operatorname{median}(\\sigma_l, \\sigma_{l+1}, \\sigma_{l+2})
        \\notin [\\sigma_0 / 10,\\ 10\\, \\sigma_0]\\ \\text{and}\\ \\sigma_l \\notin [\\sigma_0 / 10,\\ 10\\, \\sigma_0]

    The model's parameters and their ``.grad`` are left as they were; the
    model stays in its mode (call ``model.eval()`` first to switch off
    dropout and use batch-norm running statistics).

    Parameters
    ----------
    model:
        Any ``torch.nn.Module``.
    batch:
        Its input: a tensor, a tuple/list (``model(*batch)``) or a mapping
        (``model(**batch)``).
    loss:
        ``loss(output) -> scalar``. Default: ``sum(output * r)`` with ``r``
        standard normal (berry's keyed stream, ``seed``), so the output
        gradient is a random direction.
    seed:
        Key of the default loss's random direction.

    Returns
    -------
    berry.probe.ProbeReport
        One network, labelled by the model's class, one row per module call.

    Examples
    --------
    >>> import torch
    >>> from berry.torch import probe
    >>> model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64))
    >>> report = probe(model, torch.randn(32, 64, generator=torch.Generator().manual_seed(0)))
    >>> [s.name for s in report.networks[0].layers]
    ['0', '1', '2']
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {model!r} of type {type(model).__name__}")
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be a callable output -> scalar tensor, got {loss!r}")
    recorder = _Recorder(model)
    saved_grads = {parameter: parameter.grad for parameter in model.parameters()}
    recorder.attach()
    try:
        for parameter in saved_grads:
            parameter.grad = None
        with torch.enable_grad():
            output = _call(model, batch)
            result = _first_tensor(output)
            if result is None:
                raise TypeError(f"model returned {type(output).__name__}, which holds no tensor to differentiate")
            output_grad = _Gradient()
            if result.requires_grad:
                result.register_hook(output_grad)
            if loss is None:
                objective = (result * _random_direction(tuple(result.shape), seed, result)).sum()
            else:
                objective = loss(output)
                if not isinstance(objective, torch.Tensor) or objective.numel() != 1:
                    raise TypeError(f"loss must return a scalar tensor, got {objective!r}")
            if objective.requires_grad:
                objective.backward()
        output_grad_std = math.nan if output_grad.std is None else output_grad.std
        recorder.read_weight_grads()
        layers = recorder.rows()  # before detach(): the roles and streams need the calls' tensors
    finally:
        recorder.detach()
        for parameter, grad in saved_grads.items():
            parameter.grad = grad

    verdicts = judge_streams(layers)
    first_input = _first_tensor(batch)
    if first_input is not None and first_input.is_floating_point():
        input_std = _std(first_input)
    else:
        input_std = next((s.output_std for s in layers if s.role == "embedding"), math.nan)
    label = type(model).__name__
    shape = tuple(first_input.shape) if first_input is not None else None
    network = NetworkProbe(label=label, layers=layers, input_std=input_std, output_grad_std=output_grad_std,
                           forward=verdicts.forward, backward=verdicts.backward)
    config = {
        "title": f"berry.torch.probe: {label}, {len(layers)} module calls, input {list(shape) if shape else '?'}",
        "model": label,
        "input_shape": list(shape) if shape else None,
        "seed": seed,
        "loss": "sum(output * r), r ~ N(0, 1)" if loss is None else getattr(loss, "__name__", "custom"),
        "modules_judged": [s.name for s in layers if s.judged],
        "references": list(verdicts.references),
    }
    return ProbeReport((network,), config)


# --- berry probe --model: the model as built and after auto_init ---------------------------------------------------


class ModelInputError(ValueError):
    """What ``berry probe --model`` reports as a bad argument: the model, or its input, does not fit."""


def _input_specs(model: torch.nn.Module, texts: list[str] | None) -> tuple[list[Any], str, str | None]:
    """The inputs ``--input`` describes (token ids over the model's first vocabulary), or ones inferred."""
    from berry.torch.auto import _inputs, parse_input

    if not texts:
        try:
            specs, said = _inputs.infer_inputs(model)
        except ValueError as error:
            raise ModelInputError(f"--input: none given, and {error}") from None
        return specs, "input " + ", ".join("x".join(map(str, spec.shape)) for spec in specs), said
    specs = []
    for text in texts:
        try:
            spec = parse_input(text)
        except (ValueError, TypeError) as error:
            raise ModelInputError(f"--input {text!r}: {error}; allowed: dimensions separated by x, then optionally "
                                  ":long, :int32, :float16, :bfloat16, :float64 (e.g. 8x3x32x32 or 4x128:long)"
                                  ) from None
        specs.append(spec)  # token ids are drawn over the model's first vocabulary (auto's materialize)
    return specs, "input " + ", ".join(texts), None


def before_and_after(model: Any, texts: list[str] | None, *, seed: int, label: str) -> tuple[ProbeReport, Any,
                                                                                                 str | None]:
    """``berry probe --model``: the model probed as built and after :func:`berry.torch.auto.auto_init`.

    ``texts`` are ``--input`` values (``8x3x32x32``, ``4x128:long``) or ``None`` to infer an input from the
    first layer. Returns one report with the two networks ("as built", "auto_init"), the ``auto_init``
    report, and the sentence saying what input was inferred (``None`` if it was given). A model or input that
    does not fit raises :class:`ModelInputError` naming ``label`` or ``--input``.
    """
    from berry.torch.auto import before_after

    if not isinstance(model, torch.nn.Module):
        raise ModelInputError(f"{label}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    specs, source, inferred = _input_specs(model, texts)
    model.eval()  # dropout off, batch-norm running statistics: the probe measures the initialization, not noise
    try:
        before, report, after = before_after(model, *specs, seed=seed)
    except (RuntimeError, IndexError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelInputError(f"--input: {label.removeprefix('--model ')} failed on {source}: {first}") from None
    networks = (dataclasses.replace(before.networks[0], label="as built"),
                dataclasses.replace(after.networks[0], label="auto_init"))
    title = (f"berry probe {label}: {type(model).__name__}, {len(after.networks[0].layers)} module calls, "
             f"{source}, seed {seed}")
    return ProbeReport(networks, {**after.config, "title": title}), report, inferred

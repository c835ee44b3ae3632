"""Probe a real ``torch.nn.Module``: per-module std of outputs and gradients, and a verdict.

The torch counterpart of :func:`berry.probe.run`; it returns the same
:class:`~berry.probe.ProbeReport`, so ``table()``, ``to_dict()`` and
``plot()`` work alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from berry.probe.report import LayerStats, NetworkProbe, ProbeReport, judge

__all__ = ["probe"]

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


def probe(
    model: torch.nn.Module,
    batch: Any,
    *,
    loss: Callable[[Any], torch.Tensor] | None = None,
    seed: int = 0,
) -> ProbeReport:
    """Run one forward and one backward pass through ``model`` and report every leaf module's statistics.

    Hooks on the leaf modules (those without children) record, per call, the
    std and mean of the module's output, the std of the loss gradient with
    respect to that output, the std of its ``weight``'s gradient, and the
    fraction of dead units (output exactly zero on the whole batch, along the
    feature axis: the last one, or axis 1 for images and convolutions). The
    verdict (see :func:`berry.probe.judge`) follows the modules that have a
    ``weight``: forward, their outputs' std against the input's (the first
    such output's, if the input is not floating point); backward, their
    output gradients' std against the model output's gradient. The signal
    study behind it is that of Poole et al. 2016 and Schoenholz et al. 2017.

    .. math::

        \\text{exploding or vanishing where } \\sigma_l \\notin [\\sigma_0 / 10,\\ 10\\, \\sigma_0]

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
    leaves = [(name, module) for name, module in model.named_modules() if not any(True for _ in module.children())]
    if not leaves:
        raise ValueError(f"model {type(model).__name__} has no modules to probe")

    records: list[dict[str, Any]] = []
    calls: dict[str, int] = {}

    def watch(name: str) -> Callable[..., None]:
        def forward_hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            if tensor is None or not tensor.is_floating_point():
                return
            calls[name] = calls.get(name, 0) + 1
            label = name or type(module).__name__
            if calls[name] > 1:
                label += f"#{calls[name]}"  # a module used twice (shared weights) gets a row per call
            record: dict[str, Any] = {
                "name": label,
                "module": module,
                "kind": type(module).__name__,
                # Statistics now: an in-place module downstream (ReLU(inplace=True)) would overwrite the output.
                "output_std": _std(tensor),
                "act_mean": float(tensor.detach().to(torch.float64).mean()) if tensor.numel() else math.nan,
                "dead_fraction": _dead_fraction(module, tensor),
                "grad_std": None,
            }
            records.append(record)
            if tensor.requires_grad:
                def grad_hook(grad: torch.Tensor) -> None:
                    record["grad_std"] = _std(grad)

                tensor.register_hook(grad_hook)

        return forward_hook

    saved_grads = {parameter: parameter.grad for parameter in model.parameters()}
    handles = [module.register_forward_hook(watch(name)) for name, module in leaves]
    try:
        for parameter in saved_grads:
            parameter.grad = None
        with torch.enable_grad():
            output = _call(model, batch)
            result = _first_tensor(output)
            if result is None:
                raise TypeError(f"model returned {type(output).__name__}, which holds no tensor to differentiate")
            output_grad: dict[str, float] = {"std": math.nan}
            if result.requires_grad:
                result.register_hook(lambda grad: output_grad.__setitem__("std", _std(grad)))
            if loss is None:
                objective = (result * _random_direction(tuple(result.shape), seed, result)).sum()
            else:
                objective = loss(output)
                if not isinstance(objective, torch.Tensor) or objective.numel() != 1:
                    raise TypeError(f"loss must return a scalar tensor, got {objective!r}")
            if objective.requires_grad:
                objective.backward()
            output_grad_std = output_grad["std"]
        for record in records:
            weight = getattr(record["module"], "weight", None)
            record["has_weight"] = isinstance(weight, torch.nn.Parameter)
            grad = weight.grad if isinstance(weight, torch.nn.Parameter) else None
            record["weight_grad_std"] = None if grad is None else _std(grad)
    finally:
        for handle in handles:
            handle.remove()
        for parameter, grad in saved_grads.items():
            parameter.grad = grad

    layers = tuple(
        LayerStats(
            layer=index + 1,
            name=record["name"],
            kind=record["kind"],
            output_std=record["output_std"],
            act_mean=record["act_mean"],
            grad_std=record["grad_std"],
            weight_grad_std=record["weight_grad_std"],
            dead_fraction=record["dead_fraction"],
        )
        for index, record in enumerate(records)
    )
    weighted = [layer for layer, record in zip(layers, records, strict=True) if record["has_weight"]] or list(layers)
    first_input = _first_tensor(batch)
    if first_input is not None and first_input.is_floating_point():
        input_std = _std(first_input)
    else:
        input_std = weighted[0].output_std if weighted else math.nan
    forward = judge([s.output_std for s in weighted], input_std, direction="forward",
                    layers=[s.layer for s in weighted])
    backward_layers = [s for s in reversed(weighted) if s.grad_std is not None]
    backward = judge([s.grad_std for s in backward_layers if s.grad_std is not None], output_grad_std,
                     direction="backward", layers=[s.layer for s in backward_layers])
    label = type(model).__name__
    shape = tuple(first_input.shape) if first_input is not None else None
    network = NetworkProbe(label=label, layers=layers, input_std=input_std, output_grad_std=output_grad_std,
                           forward=forward, backward=backward)
    config = {
        "title": f"berry.torch.probe: {label}, {len(layers)} module calls, input {list(shape) if shape else '?'}",
        "model": label,
        "input_shape": list(shape) if shape else None,
        "seed": seed,
        "loss": "sum(output * r), r ~ N(0, 1)" if loss is None else getattr(loss, "__name__", "custom"),
        "modules_judged": [s.name for s in weighted],
    }
    return ProbeReport((network,), config)

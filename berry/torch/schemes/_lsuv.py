"""LSUV (Mishkin & Matas 2016): orthonormal start, then each layer rescaled to unit output variance."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from berry._format import format_table
from berry._validation import check_int, check_positive
from berry.torch._model import InitReport, RulesLike
from berry.torch._walk import ParameterEntry, divide_entry
from berry.torch.schemes._report import SchemeRules, apply_rules
from berry.torch.schemes._roles import ModelParameters, PresetError, exact, shown

__all__ = ["LSUVLayer", "LSUVReport", "lsuv"]

logger = logging.getLogger("berry.torch.schemes")


@dataclasses.dataclass(frozen=True)
class LSUVLayer:
    """LSUV's progress on one layer."""

    name: str  #: the module's qualified name
    iterations: int  #: rescalings applied
    std_before: float  #: output std after the orthonormal start
    std_after: float  #: output std at the end
    variance: float  #: output variance at the end
    converged: bool  #: whether ``|variance - 1| < tol``


@dataclasses.dataclass(frozen=True)
class LSUVReport:
    """What :func:`lsuv` did: the orthonormal start and each layer's rescaling, in forward order."""

    tol: float
    max_iter: int
    layers: tuple[LSUVLayer, ...]
    init: InitReport

    @property
    def converged(self) -> bool:
        """Whether every layer ended within the tolerance."""
        return all(layer.converged for layer in self.layers)

    def table(self) -> str:
        """One line per layer: name, iterations, output std before and after, converged."""
        rows = [(layer.name, layer.iterations, layer.std_before, layer.std_after, "yes" if layer.converged else "NO")
                for layer in self.layers]
        return format_table(rows, ("layer", "iters", "std before", "std after", "ok"))

    def __str__(self) -> str:
        return self.table()


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the layer of interest has run."""


def lsuv(
    model: nn.Module,
    batch: Any,
    *,
    seed: int = 0,
    tol: float = 0.1,
    max_iter: int = 10,
    layer_types: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd),
    rules: RulesLike = None,
    verbose: bool = False,
    callback: Callable[[LSUVLayer], None] | None = None,
) -> LSUVReport:
    """Layer-sequential unit-variance initialization (Mishkin & Matas 2016, "All you need is a good init").

    1. Every weight of ``layer_types`` starts orthonormal (Saxe et al. 2014),
       keyed by berry's seed and its name; their biases start at zero.
    2. For each such layer in forward order, forward ``batch`` through the
       model and divide the layer's weight by the standard deviation of its
       output, until the output variance is within ``tol`` of 1 or
       ``max_iter`` rescalings are done:

    .. math:: W_l \\leftarrow \\frac{W_l}{\\sqrt{\\operatorname{Var}(B_l)}}
        \\quad \\text{until} \\quad |\\operatorname{Var}(B_l) - 1| < t_{var}

    The forward passes run without gradients in eval mode (the mode is
    restored) and stop at the layer being scaled, so the cost is about
    ``layers x (iterations + 1)`` partial forward passes. The result depends
    on the batch: the same model, seed and batch give the same weights
    (applying twice changes nothing).

    Parameters
    ----------
    model:
        The model.
    batch:
        Its input (a tensor, or a tuple of positional arguments).
    seed:
        berry's seed for the orthonormal start.
    tol:
        Tolerance on the output variance (the paper's ``t_var``, 0.1).
    max_iter:
        Most rescalings per layer (the paper's ``T_max``, 10).
    layer_types:
        Module types whose output is normalized.
    rules:
        :func:`berry.torch.init_model` rules for other parameters.
    verbose:
        Print each layer's line as it finishes (also logged at INFO on ``berry.torch.schemes``).
    callback:
        Called with each :class:`LSUVLayer` as it finishes.

    Also known as: LSUV.

    >>> import torch
    >>> from berry.torch.models import ResidualMLP
    >>> model = ResidualMLP(in_features=8, width=32, depth=3, out_features=4)
    >>> report = lsuv(model, torch.randn(256, 8, generator=torch.Generator().manual_seed(0)), seed=0)
    >>> report.converged
    True
    """
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    if not (isinstance(layer_types, tuple) and all(isinstance(t, type) for t in layer_types)):
        raise TypeError(f"layer_types must be a tuple of nn.Module classes, got {layer_types!r}")
    arguments = batch if isinstance(batch, tuple) else (batch,)
    targets = [(name, module) for name, module in model.named_modules() if isinstance(module, layer_types)]
    if not targets:
        raise PresetError(
            f"lsuv: the model has no layers of types {[t.__name__ for t in layer_types]}; "
            f"its modules are: {shown([type(m).__name__ for _, m in model.named_modules()])}"
        )
    target_ids = {id(module) for _, module in targets}
    parameters = ModelParameters(model)
    scheme_rules: SchemeRules = []
    for entry in parameters:
        if id(entry.module) not in target_ids:
            continue
        if entry.local_name == "weight":
            scheme_rules.append((exact(entry.name), {"init": "orthogonal", "layout": "torch"}))
        elif entry.local_name == "bias":
            scheme_rules.append((exact(entry.name), "zeros"))
    report = apply_rules(model, scheme_rules, rules, seed)

    order = _forward_order(model, targets, arguments)
    was_training = model.training
    model.eval()
    records = []
    try:
        with torch.no_grad():
            for name, module in order:
                weight = _weight_of(name, module, parameters)
                variance = _output_variance(model, module, arguments)
                std_before, iterations = math.sqrt(variance), 0
                while abs(variance - 1.0) >= tol and iterations < max_iter and math.isfinite(variance) and variance > 0:
                    divide_entry(weight, math.sqrt(variance))
                    iterations += 1
                    variance = _output_variance(model, module, arguments)
                record = LSUVLayer(name, iterations, std_before, math.sqrt(max(variance, 0.0)), variance,
                                   abs(variance - 1.0) < tol)
                records.append(record)
                logger.info("lsuv %s: %d iterations, std %.4g -> %.4g", name, iterations, std_before, record.std_after)
                if verbose:
                    print(f"lsuv {name}: {iterations} iterations, std {std_before:.4g} -> {record.std_after:.4g}")
                if callback is not None:
                    callback(record)
    finally:
        model.train(was_training)
    return LSUVReport(tol, max_iter, tuple(records), report)


def _weight_of(name: str, module: nn.Module, parameters: ModelParameters) -> ParameterEntry:
    """The entry of a layer's weight: its own, a parametrized one, or one it shares with another module."""
    weight = module._parameters.get("weight")
    for entry in parameters:
        if (entry.module is module and entry.local_name == "weight") or (weight is not None and entry.parameter is weight):
            return entry
    raise ValueError(f"lsuv: the layer {name!r} ({type(module).__name__}) has no weight parameter to rescale")


def _forward_order(
    model: nn.Module, targets: list[tuple[str, nn.Module]], arguments: tuple[Any, ...]
) -> list[tuple[str, nn.Module]]:
    """The target layers in the order the forward pass first calls them (layers never called are skipped)."""
    order: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if id(module) not in seen:
                seen.add(id(module))
                order.append((name, module))

        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in targets]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*arguments)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return order


def _output_variance(model: nn.Module, module: nn.Module, arguments: tuple[Any, ...]) -> float:
    captured: list[torch.Tensor] = []

    def hook(_: nn.Module, inputs: Any, output: Any) -> None:
        captured.append(output.detach())
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        model(*arguments)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"lsuv: the layer {module} was not called by the forward pass")
    return float(captured[0].double().var())

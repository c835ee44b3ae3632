"""Which tensors of a model berry initializes, under which names: one walk for init_model and the schemes.

Each parameter appears once (a tied parameter under its first name), named by
its fully qualified name with wrapper segments dropped (``_orig_mod`` of
``torch.compile``, ``_fsdp_wrapped_module``, ``_checkpoint_wrapped_module``),
so the name is the same whatever wraps the model. A weight computed by a
parametrization or a legacy norm hook appears once under its module
attribute's name (``"0.weight"``, not ``"0.parametrizations.weight.original0"``),
with the module it belongs to, so ``"Linear:weight"`` rules match it (see
:mod:`berry.torch._parametrized`). Tensors berry cannot fill are listed with
the reason, never dropped: lazy parameters (no shape before the first
forward) and quantized modules (packed weights that are not parameters).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from torch import nn
from torch.nn.parameter import UninitializedParameter

from berry.torch._parametrized import Reparametrization, reparametrizations
from berry.torch._tensors import divide_

__all__ = ["WRAPPER_SEGMENTS", "ParameterEntry", "canonical_name", "divide_entry", "parameter_entries", "unwrap"]

#: Wrapper modules that add a segment to parameter names without changing the model.
WRAPPER_SEGMENTS = frozenset({"_orig_mod", "_fsdp_wrapped_module", "_checkpoint_wrapped_module"})

_LAZY = "lazy: no shape before the first forward; run one forward pass, then initialize"
_QUANTIZED = (
    "quantized module {kind}: its packed weights are not parameters berry can write; "
    "initialize the float model before quantizing it"
)


@dataclasses.dataclass(frozen=True)
class ParameterEntry:
    """One tensor berry initializes (or reports it cannot)."""

    name: str  #: fully qualified, wrapper segments dropped: the stream's key with the seed
    local_name: str  #: its name in ``module`` ("weight")
    module: nn.Module  #: the module it belongs to (for a parametrized weight, the layer)
    parameter: nn.Parameter | None  #: the parameter itself; None for a parametrized weight or a skipped one
    shape: tuple[int, ...] | None  #: the (effective) global shape; None where unknown
    reparametrization: Reparametrization | None = None
    skipped: str | None = None  #: why berry cannot fill it

    @property
    def tensors(self) -> tuple[nn.Parameter, ...]:
        """The parameters it stands for (a parametrized weight's originals)."""
        if self.reparametrization is not None:
            return self.reparametrization.originals
        return () if self.parameter is None else (self.parameter,)


def canonical_name(parts: Sequence[str]) -> str:
    """Dotted name from its parts, empty parts and wrapper segments dropped."""
    return ".".join(part for part in parts if part and part not in WRAPPER_SEGMENTS)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside ``DistributedDataParallel`` / ``DataParallel`` wrappers."""
    parallel = getattr(nn.parallel, "DistributedDataParallel", None)
    while (parallel is not None and isinstance(model, parallel)) or isinstance(model, nn.DataParallel):
        model = model.module
    return model


def parameter_entries(model: nn.Module, prefix: str = "") -> list[ParameterEntry]:
    """The model's parameters in model order, each once, as berry names and initializes them."""
    seen: set[int] = set()
    quantized: list[str] = []
    entries: list[ParameterEntry] = []
    for module_name, module in model.named_modules(remove_duplicate=False):
        path = module_name.split(".") if module_name else []
        if any(module_name == q or module_name.startswith(q + ".") for q in quantized):
            continue  # inside a quantized module, already reported
        if type(module).__module__.startswith("torch.ao.nn.quantized") and hasattr(module, "_packed_params"):
            if id(module) not in seen:
                seen.add(id(module))
                quantized.append(module_name)
                entries.append(ParameterEntry(canonical_name([prefix, *path, "weight"]), "weight", module, None, None,
                                              skipped=_QUANTIZED.format(kind=type(module).__name__)))
            continue
        for found in reparametrizations(module):
            if any(id(p) in seen for p in found.originals):
                continue
            seen.update(id(p) for p in found.originals)
            entries.append(ParameterEntry(canonical_name([prefix, *path, found.attribute]), found.attribute, module,
                                          None, found.shape, found))
        for local_name, parameter in module._parameters.items():
            if parameter is None or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            name = canonical_name([prefix, *path, local_name])
            if isinstance(parameter, UninitializedParameter):
                entries.append(ParameterEntry(name, local_name, module, None, None, skipped=_LAZY))
            elif parameter.is_quantized:
                entries.append(ParameterEntry(name, local_name, module, parameter, None,
                                              skipped=_QUANTIZED.format(kind=f"tensor of {parameter.dtype}")))
            else:
                entries.append(ParameterEntry(name, local_name, module, parameter, tuple(parameter.shape)))
    return entries


def divide_entry(entry: ParameterEntry, divisor: float) -> None:
    """Divide the (effective) tensor by ``divisor`` in place: LSUV's rescaling."""
    if entry.reparametrization is not None:
        target = entry.reparametrization.effective() / divisor
        entry.reparametrization.assign(target, seed=0, name=entry.name, what=f"its values divided by {divisor:.4g}")
    elif entry.parameter is not None:
        divide_(entry.parameter, divisor)
    else:  # pragma: no cover - skipped entries are never rescaled
        raise ValueError(f"{entry.name} cannot be rescaled: {entry.skipped}")

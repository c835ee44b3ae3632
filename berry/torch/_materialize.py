"""Materialize a model built on the meta device without untying its tied weights.

``model.to_empty(device=...)`` gives every module its own new tensor, so a
parameter shared by two modules (GPT-2's ``wte.weight`` and
``lm_head.weight``) becomes two: a 124M-parameter GPT-2 silently has 163M,
and the two copies are initialized and trained apart. :func:`materialize`
records which modules share each tensor before, restores the sharing after,
and marks the model so that :func:`berry.torch.init_model` can warn if the
ties are lost later. :func:`check_ties` is that warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["check_ties", "materialize"]

#: Attribute a materialized model carries: the groups of (kind, path) that must share one tensor.
TIES_ATTRIBUTE = "_berry_tied_tensors"

Slot = tuple[str, str]  # ("parameter" | "buffer", dotted path relative to the model)


def materialize(model: nn.Module, device: torch.device | str | int) -> nn.Module:
    """Give a model built on ``torch.device("meta")`` storage on ``device``, keeping tied tensors tied.

    What ``model.to_empty(device=device)`` does, except that

    * tensors shared by several modules (tied embeddings and output heads,
      shared buffers) are still shared afterwards: same tensor, same
      ``data_ptr``, counted once by ``model.parameters()``;
    * tensors that already hold values (not on the meta device) keep them
      (moved to ``device``) instead of being replaced by uninitialized memory;
    * BatchNorm running statistics start at their reset values;
    * buffers that were on the meta device and that berry cannot compute
      (causal masks, rotary tables, ...) hold uninitialized memory: a
      ``UserWarning`` names them, so that you recompute them.

    Parameters hold uninitialized memory until :func:`berry.torch.init_model`
    fills them. The model is changed in place and returned. Sharded models
    (FSDP2's ``fully_shard`` applied on the meta device) work the same way:
    each rank allocates its shards.

    Parameters
    ----------
    model:
        The model, typically built under ``with torch.device("meta"):``.
    device:
        Where its tensors go (``"cpu"``, ``"cuda"``, ``torch.device("cuda", 1)``, ...).

    >>> import torch
    >>> from berry.torch import init_model, materialize
    >>> class TiedLM(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.wte = torch.nn.Embedding(100, 16)
    ...         self.lm_head = torch.nn.Linear(16, 100, bias=False)
    ...         self.lm_head.weight = self.wte.weight
    >>> with torch.device("meta"):
    ...     model = TiedLM()
    >>> model = materialize(model, "cpu")
    >>> model.lm_head.weight is model.wte.weight, sum(p.numel() for p in model.parameters())
    (True, 1600)
    >>> [p.name for p in init_model(model, {}, seed=0)]
    ['wte.weight']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda', got {device!r}") from error
    if target.type == "meta":
        raise ValueError("device='meta' would leave the model without storage; give a real device such as 'cpu'")
    try:  # before the model is touched: torch's own error would come half-way through, from deep inside
        torch.empty(0, device=target)
    except (RuntimeError, AssertionError, NotImplementedError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"device={device!r} is not available here ({reason}); give a device this machine has, "
                         "such as 'cpu'") from error
    ties = _tied_slots(model)
    empty_buffers = [path for path, buffer in model.named_buffers(remove_duplicate=True) if buffer.is_meta]

    def convert(tensor: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(tensor, device=target) if tensor.is_meta else tensor.to(target)

    model._apply(convert)  # what to_empty runs, with convert keeping values that exist
    for slots in ties:
        shared = _get(model, slots[0])
        for slot in slots[1:]:
            if _get(model, slot) is not shared:
                _set(model, slot, shared)
    setattr(model, TIES_ATTRIBUTE, tuple(ties))

    statistics = set()
    for module_name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            prefix = f"{module_name}." if module_name else ""
            names = {f"{prefix}{key}" for key in ("running_mean", "running_var", "num_batches_tracked")}
            if names & set(empty_buffers):
                module.reset_running_stats()
            statistics |= names
    unknown = [path for path in empty_buffers if path not in statistics]
    if unknown:
        warnings.warn(
            f"materialize: the buffers {unknown} were on the meta device and now hold uninitialized memory; "
            "recompute them (e.g. the causal mask or rotary tables your model builds in __init__)",
            UserWarning,
            stacklevel=2,
        )
    return model


def check_ties(model: nn.Module, *, stacklevel: int = 2) -> list[tuple[str, ...]]:
    """Warn about tensors that were tied before materialization and are not now; returns their names.

    Two signals are read: the record :func:`materialize` leaves on a model,
    and Hugging Face's ``config.tie_word_embeddings`` with the model's
    ``get_input_embeddings()`` / ``get_output_embeddings()``. A model that
    was tied but carries neither (e.g. nanoGPT after a plain ``to_empty``)
    cannot be told apart from one that is untied on purpose: nothing is said.
    """
    broken: list[tuple[str, ...]] = []
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for slots in getattr(module, TIES_ATTRIBUTE, ()):
            try:
                tensors = {id(_get(module, slot)) for slot in slots}
            except AttributeError:
                continue  # the model changed shape since; not a tie we can judge
            if len(tensors) > 1:
                broken.append(tuple(prefix + path for _, path in slots))
    broken += _hugging_face_untied(model)
    for names in broken:
        warnings.warn(
            f"{' and '.join(names)} were tied (one tensor) before the model was materialized and are separate "
            "tensors now: model.to_empty() unties shared parameters. Materialize with "
            "berry.torch.materialize(model, device), which keeps them tied, or tie them again "
            "(e.g. model.tie_weights()) before initializing",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
    return broken


# ----------------------------------------------------------------------------- helpers
def _slots(model: nn.Module) -> Iterator[tuple[Slot, int, nn.Module, str]]:
    for module_name, module in model.named_modules(remove_duplicate=False):
        prefix = f"{module_name}." if module_name else ""
        for kind, tensors in (("parameter", module._parameters), ("buffer", module._buffers)):
            for local, tensor in tensors.items():
                if tensor is not None:
                    yield (kind, prefix + local), id(tensor), module, local


def _tied_slots(model: nn.Module) -> list[tuple[Slot, ...]]:
    """Groups of (kind, path) that hold one tensor under different module attributes."""
    by_tensor: dict[int, list[Slot]] = {}
    attributes: dict[int, set[tuple[int, str]]] = {}
    for slot, tensor_id, module, local in _slots(model):
        owners = attributes.setdefault(tensor_id, set())
        if (id(module), local) in owners:
            continue  # the same attribute reached again through a shared module
        owners.add((id(module), local))
        by_tensor.setdefault(tensor_id, []).append(slot)
    return [tuple(slots) for slots in by_tensor.values() if len(slots) > 1]


def _owner(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    module_path, _, local = path.rpartition(".")
    return (model.get_submodule(module_path) if module_path else model), local


def _get(model: nn.Module, slot: Slot) -> Any:
    kind, path = slot
    owner, local = _owner(model, path)
    table = owner._parameters if kind == "parameter" else owner._buffers
    if table.get(local) is None:
        raise AttributeError(path)
    return table[local]


def _set(model: nn.Module, slot: Slot, tensor: Any) -> None:
    kind, path = slot
    owner, local = _owner(model, path)
    (owner._parameters if kind == "parameter" else owner._buffers)[local] = tensor


def _hugging_face_untied(model: nn.Module) -> list[tuple[str, ...]]:
    config = getattr(model, "config", None)
    if not getattr(config, "tie_word_embeddings", False):
        return []
    try:
        inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()  # type: ignore[operator]
    except Exception:  # models without both (or that raise NotImplementedError): no signal
        return []
    weight_in, weight_out = getattr(inputs, "weight", None), getattr(outputs, "weight", None)
    if weight_in is None or weight_out is None or weight_in is weight_out:
        return []
    names = {id(module): name for name, module in model.named_modules()}
    return [(f"{names.get(id(inputs), 'input embeddings')}.weight", f"{names.get(id(outputs), 'output embeddings')}.weight")]

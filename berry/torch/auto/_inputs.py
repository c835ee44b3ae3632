"""Example inputs: real tensors, meta tensors, :class:`InputSpec` shapes, or inferred from the first layer."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from berry._validation import check_finite, check_int

__all__ = ["InputSpec", "infer_inputs", "load_model", "materialize", "normalize_inputs", "parse_input", "statistics_of",
           "vocabulary"]


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """An input described by its shape (and law) instead of values.

    Floating inputs are taken to have the given ``mean`` and ``std`` (default
    standardized: 0 and 1); integer inputs (token ids) are indices, uniform
    over ``[0, high)`` when values are needed (``high`` defaults to the
    vocabulary of the embedding that reads them).

    >>> InputSpec((4, 128), dtype=torch.long)
    InputSpec(shape=(4, 128), dtype=torch.int64, mean=0.0, std=1.0, high=None)
    """

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    mean: float = 0.0
    std: float = 1.0
    high: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.shape, int) or not isinstance(self.shape, Sequence):
            raise TypeError(f"InputSpec shape must be a sequence of ints, got {self.shape!r}")
        object.__setattr__(self, "shape", tuple(check_int("shape", s, minimum=0) for s in self.shape))
        if not isinstance(self.dtype, torch.dtype):
            raise TypeError(f"InputSpec dtype must be a torch.dtype, got {self.dtype!r}")
        object.__setattr__(self, "mean", check_finite("mean", self.mean))
        object.__setattr__(self, "std", check_finite("std", self.std))
        if self.std < 0:
            raise ValueError(f"InputSpec std must be >= 0, got {self.std!r}")
        if self.high is not None:
            object.__setattr__(self, "high", check_int("high", self.high, minimum=1))

    def meta(self) -> torch.Tensor:
        return torch.empty(self.shape, dtype=self.dtype, device="meta")


def _is_shape(value: Any) -> bool:
    return isinstance(value, (tuple, torch.Size)) and len(value) > 0 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value)


def normalize_inputs(args: Sequence[Any]) -> list[Any]:
    """Example arguments with bare shapes (tuples of ints) turned into float :class:`InputSpec`."""
    return [InputSpec(tuple(a)) if _is_shape(a) else a for a in args]


def statistics_of(value: Any) -> tuple[str, float, float, str]:
    """(kind, second moment, mean, description) of one example input."""
    if isinstance(value, InputSpec):
        floating = value.dtype.is_floating_point
        where = f"spec {list(value.shape)} {str(value.dtype).removeprefix('torch.')}"
        if not floating:
            return "index", 0.0, 0.0, where
        return "data", value.std**2 + value.mean**2, value.mean, where + f" (mean {value.mean:g}, std {value.std:g})"
    if isinstance(value, torch.Tensor):
        where = f"{'meta ' if value.is_meta else ''}tensor {list(value.shape)} {str(value.dtype).removeprefix('torch.')}"
        if not (value.dtype.is_floating_point or value.dtype.is_complex):
            return "index", 0.0, 0.0, where
        if value.is_meta or value.numel() == 0:
            return "data", 1.0, 0.0, where + " (values unknown: standardized assumed)"
        local = value.detach()
        from berry.torch._tensors import is_dtensor

        if is_dtensor(local):
            local = local.full_tensor()  # type: ignore[attr-defined]
        if value.dtype.is_complex:  # E|z|^2 (casting to a real dtype would drop the imaginary part, and warn)
            z = local.to(torch.complex128)
            q, m = float((z.real * z.real + z.imag * z.imag).mean()), 0.0
            return "data", q, m, where + f" (measured: rms {math.sqrt(q):.3g}; complex, taken as centred)"
        x = local.to(torch.float64)
        q, m = float((x * x).mean()), float(x.mean())
        return "data", q, m, where + f" (measured: mean {m:.3g}, rms {math.sqrt(q):.3g})"
    return "other", 0.0, 0.0, type(value).__name__


def as_recordable(value: Any) -> Any:
    """What the recorder receives for an example argument (specs become meta tensors)."""
    if isinstance(value, InputSpec):
        return value.meta()
    if isinstance(value, (list, tuple)) and not _is_shape(value):
        return type(value)(as_recordable(v) for v in value)
    if isinstance(value, Mapping):
        return {k: as_recordable(v) for k, v in value.items()}
    return value


def materialize(value: Any, *, device: torch.device, seed: int, high: int | None = None) -> Any:
    """Real values for a spec or meta tensor (deterministic, from ``seed``): for runs that need values."""
    if isinstance(value, (InputSpec, torch.Tensor)) and (isinstance(value, InputSpec) or value.is_meta):
        shape = tuple(value.shape)
        dtype = value.dtype
        generator = torch.Generator().manual_seed(seed)
        if dtype.is_floating_point:
            mean, std = (value.mean, value.std) if isinstance(value, InputSpec) else (0.0, 1.0)
            return (torch.randn(shape, generator=generator, dtype=torch.float64) * std + mean).to(dtype).to(device)
        limit = (value.high if isinstance(value, InputSpec) else None) or high or 2
        return torch.randint(0, int(limit), shape, generator=generator).to(dtype).to(device)
    if isinstance(value, (list, tuple)) and not _is_shape(value):
        return type(value)(materialize(v, device=device, seed=seed + i, high=high) for i, v in enumerate(value))
    if isinstance(value, Mapping):
        return {k: materialize(v, device=device, seed=seed, high=high) for k, v in value.items()}
    return value


def vocabulary(model: nn.Module) -> int | None:
    """The size of the model's first embedding: the range token ids are drawn from when values are needed."""
    return next((m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)), None)


def infer_inputs(model: nn.Module) -> tuple[list[Any], str]:
    """An input for ``model`` read from its first layer, and a sentence saying what was assumed."""
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding):
            others = [e.num_embeddings for e in embeddings if e is not module]
            length = max(1, min([16, *others]))
            spec = InputSpec((2, length), dtype=torch.long, high=module.num_embeddings)
            return [spec], (f"no example input: token ids (2, {length}) inferred from the first layer "
                            f"{name or type(module).__name__} (Embedding of {module.num_embeddings})")
        if isinstance(module, nn.Linear):
            return [InputSpec((2, module.in_features))], (
                f"no example input: (2, {module.in_features}) standardized inferred from the first layer "
                f"{name or 'Linear'}")
        if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
            dims = len(module.kernel_size)
            side = {1: 64, 2: 32, 3: 16}[dims]
            shape = (2, module.in_channels, *([side] * dims))
            return [InputSpec(shape)], (f"no example input: {shape} standardized inferred from the first layer "
                                        f"{name or type(module).__name__} (spatial size {side} assumed)")
        if isinstance(module, nn.RNNBase):
            shape = (2, 8, module.input_size) if module.batch_first else (8, 2, module.input_size)
            return [InputSpec(shape)], (f"no example input: sequences {shape} inferred from the first layer "
                                        f"{name or type(module).__name__}")
    raise ValueError(
        f"cannot infer an input for {type(model).__name__}: its first layer is not an Embedding, Linear, "
        "convolution or recurrent module; pass example inputs, e.g. auto_init(model, torch.randn(8, 3, 32, 32)) "
        "or berry.torch.auto.InputSpec((8, 128), dtype=torch.long)")


def parse_input(text: str) -> InputSpec:
    """An :class:`InputSpec` from command-line text: ``8x3x32x32`` (standardized floats) or ``4x128:long``.

    >>> parse_input("4x128:long")
    InputSpec(shape=(4, 128), dtype=torch.int64, mean=0.0, std=1.0, high=None)
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"input must look like 8x3x32x32 or 4x128:long, got {text!r}")
    shape_text, _, dtype_text = text.strip().partition(":")
    try:
        shape = tuple(int(part) for part in shape_text.replace(",", "x").split("x"))
    except ValueError:
        raise ValueError(f"input shape {shape_text!r} must be integers separated by x, e.g. 8x3x32x32") from None
    if any(dim < 1 for dim in shape):  # an empty input has no values to probe or measure
        raise ValueError(f"input shape {shape_text!r} must have dimensions >= 1, e.g. 8x3x32x32")
    dtypes = {"": torch.float32, "float": torch.float32, "float32": torch.float32, "float16": torch.float16,
              "bfloat16": torch.bfloat16, "float64": torch.float64, "long": torch.long, "int64": torch.long,
              "int": torch.int32, "int32": torch.int32}
    if dtype_text.strip().lower() not in dtypes:
        raise ValueError(f"input dtype {dtype_text!r} is not one of {sorted(k for k in dtypes if k)}")
    return InputSpec(shape, dtype=dtypes[dtype_text.strip().lower()])


def load_model(spec: str) -> nn.Module:
    """The model built by ``MODULE:FACTORY`` (a module path and a callable in it taking no argument).

    >>> type(load_model("berry.torch.auto.zoo:ViT")).__name__
    'ViT'
    """
    import importlib

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"model must be MODULE:FACTORY (e.g. mypkg.models:make_model), got {spec!r}")
    factory: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        factory = getattr(factory, part)
    if not callable(factory):
        raise TypeError(f"{spec} is a {type(factory).__name__}, not a callable that builds a model")
    model = factory()
    if not isinstance(model, nn.Module):
        raise TypeError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    return model

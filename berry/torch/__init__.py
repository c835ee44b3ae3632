"""berry for PyTorch: a drop-in ``torch.nn.init`` and whole-model initialization.

``import berry.torch as init`` replaces ``import torch.nn.init as init``:
every function of ``torch.nn.init`` is here with the same signature,
defaults, errors and warnings, filling tensors in place (CPU or CUDA,
float16/bfloat16/float32/float64, views, meta tensors, DTensors). Each also
takes keyword-only ``seed=`` and ``name=`` to use berry's keyed stream, whose
values depend on nothing but (seed, name, shape, initializer).

:func:`auto_init` chooses every parameter's initialization from the model's
executed graph (see ``docs/auto.md``); :func:`init_model` initializes a whole
``torch.nn.Module`` from declarative rules, keyed by each parameter's fully qualified name, so that the values are
the same whatever the order of layers, the device, or the sharding (DTensor,
FSDP2). :func:`materialize` gives a model built on the meta device its
storage without untying tied weights. See ``docs/torch.md`` for the
meta-device + ``fully_shard`` recipe.

Importing this module imports torch (``pip install 'berry[torch]'``);
``import berry`` alone does not.

>>> import torch
>>> import berry.torch as init
>>> w = init.kaiming_normal_(torch.empty(128, 64), nonlinearity="relu", seed=0, name="fc.weight")
>>> w.shape
torch.Size([128, 64])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from berry._optional import require

require("torch", extra="torch", adapter="berry.torch")

from berry.torch import _nn_init  # noqa: E402  (after the check that torch is installed)
from berry.torch._materialize import materialize  # noqa: E402
from berry.torch._model import InitReport, ParameterInit, Rule, UnmatchedRuleError, default_rules, init_model  # noqa: E402
from berry.torch._nn_init import *  # noqa: E402, F403  (torch.nn.init's names are listed once, in _nn_init.__all__)
from berry.torch._nn_init import _calculate_correct_fan, _calculate_fan_in_and_fan_out  # noqa: E402

__all__ = [
    *_nn_init.__all__,
    "AutoInitReport",
    "InitReport",
    "ParameterInit",
    "Rule",
    "UnmatchedRuleError",
    "auto_init",
    "auto_plan",
    "default_rules",
    "init_model",
    "materialize",
    "probe",
]

# Kept importable under torch's private names: layer code calls them.
_PRIVATE_COMPAT = (_calculate_correct_fan, _calculate_fan_in_and_fan_out)


_LAZY_SUBMODULES = frozenset({"schemes", "models", "auto"})
#: Architecture-aware initialization (berry.torch.auto), loaded on first use.
_LAZY_AUTO = frozenset({"auto_init", "auto_plan", "AutoInitReport"})


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"berry.torch.{name}")
    if name in _LAZY_AUTO:
        value = getattr(importlib.import_module("berry.torch.auto"), name)
        globals()[name] = value
        return value
    if name == "probe":  # signal-propagation diagnostics, loaded on first use
        value = importlib.import_module("berry.torch._probe").probe
        globals()[name] = value
        return value
    raise AttributeError(f"module 'berry.torch' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from berry.torch._probe import probe
    from berry.torch.auto import AutoInitReport, auto_init, auto_plan

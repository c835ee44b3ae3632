"""berry for JAX and Flax: initializers with JAX's ``(key, shape, dtype)`` protocol, and whole Flax models.

The factories mirror ``jax.nn.initializers`` (every name, same arguments,
meanings and errors, complex dtypes included) and add berry's own rules;
every initializer draws its values from berry's keyed stream, so the same
key, parameter name and spec give the same bits eagerly, under ``jax.jit``,
on any mesh (:func:`sharded`), and in ``berry.sample``, ``berry.torch`` and
``berry.keras`` with the matching seed (:func:`seed_from_key`).
:func:`init_nnx` and :func:`init_linen` initialize whole Flax models from
declarative rules, with the same weights as ``berry.torch.init_model`` and
``berry.keras.init_model`` for the same architecture (:mod:`berry.jax.model`).

Importing this module needs JAX (``pip install 'berry[jax]'``); ``import
berry`` alone does not import it.

>>> import jax, numpy as np, berry, berry.jax
>>> init = berry.jax.glorot_uniform(name="dense/kernel")
>>> w = jax.jit(init, static_argnums=1)(jax.random.key(0), (4, 3))
>>> expected = berry.sample((4, 3), "xavier", distribution="uniform", seed=0, name="dense/kernel")
>>> bool((np.asarray(w) == expected).all())
True
"""

from __future__ import annotations

from berry._optional import require

require("jax", extra="jax", adapter="berry.jax")

from berry._rules import InitReport, ParameterInit, Rule, UnmatchedRuleError, default_rules  # noqa: E402
from berry.jax import initializers as _initializers  # noqa: E402  (after the check that JAX is installed)
from berry.jax import model as _model  # noqa: E402  (imports no framework until called)
from berry.jax._keys import seed_from_key  # noqa: E402
from berry.jax.initializers import *  # noqa: E402, F403  (the public names are listed once, in initializers.__all__)
from berry.jax.model import *  # noqa: E402, F403

__all__ = [
    *_initializers.__all__, *_model.__all__, "InitReport", "ParameterInit", "Rule", "UnmatchedRuleError",
    "default_rules", "seed_from_key",
]

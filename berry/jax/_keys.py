"""JAX PRNG keys as berry seeds.

A JAX key is turned into berry's 64-bit seed from its raw data
(``jax.random.key_data``) by the adapter contract's
:func:`berry._adapter.seed_from_words`: a two-word key ``[hi, lo]`` (the
default ``threefry2x32`` implementation, new-style or legacy ``uint32[2]``)
becomes ``hi * 2**32 + lo``, so ``jax.random.key(s)`` and
``jax.random.PRNGKey(s)`` map to berry's ``seed=s`` for every
``0 <= s < 2**32``. Keys with more words (``rbg``, ``unsafe_rbg``) are folded
into 64 bits by a stable hash (BLAKE2b). This module only reads the words out
of a JAX key.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from berry._adapter import seed_from_words

__all__ = ["key_words", "seed_from_key", "seed_from_words"]

_KEY_HELP = "a JAX PRNG key: jax.random.key(seed) or jax.random.PRNGKey(seed)"


def key_words(key: Any) -> Any:
    """The raw ``uint32`` words of a JAX key (a tracer under ``jit``), after checking it is a key."""
    import jax
    import jax.numpy as jnp

    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is None or shape is None:
        raise TypeError(f"key must be {_KEY_HELP}, got {key!r} of type {type(key).__name__}")
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(f"key must be a single PRNG key, got an array of keys with shape {shape}")
        return jax.random.key_data(key)
    if dtype == jnp.uint32 and len(shape) == 1 and shape[0] in (2, 4):
        return key  # a legacy raw key (uint32[2] for threefry, uint32[4] for rbg)
    raise TypeError(
        f"key must be {_KEY_HELP}, got an array of dtype {dtype} and shape {tuple(shape)}; "
        "legacy raw keys must be uint32 arrays of shape (2,) or (4,)"
    )


def seed_from_key(key: Any) -> int:
    """berry's 64-bit seed for a concrete JAX PRNG key.

    The two words of a default key become ``hi * 2**32 + lo``, so a key made
    from a small integer maps back to that integer: use the same integer as
    ``seed=`` in :func:`berry.sample` (or ``berry.torch``/``berry.keras``) to
    get the same weights.

    Parameters
    ----------
    key : jax.Array
        A new-style key (``jax.random.key``) or a legacy ``uint32[2]`` key
        (``jax.random.PRNGKey``). Not a traced value: inside ``jax.jit`` the
        initializers read the key through a host callback instead.

    Examples
    --------
    >>> import jax
    >>> from berry.jax import seed_from_key
    >>> seed_from_key(jax.random.key(42)), seed_from_key(jax.random.PRNGKey(42))
    (42, 42)
    """
    import jax

    words = key_words(key)
    if isinstance(words, jax.core.Tracer):
        raise TypeError("seed_from_key needs a concrete key, got a traced value (inside jax.jit or vmap)")
    return seed_from_words(np.asarray(words))

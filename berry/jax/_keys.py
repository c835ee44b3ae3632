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


def key_words(key: Any, caller: str = "berry.jax initializer") -> Any:
    """The raw ``uint32`` words of a JAX key (a tracer under ``jit``), after checking it is a key.

    Errors begin with JAX's own wording (``jax.random``'s key checks), then say what berry expects.
    """
    import jax
    import jax.numpy as jnp

    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is None or shape is None or getattr(key, "ndim", None) is None:
        raise TypeError(
            "JAX encountered invalid PRNG key data: expected key_data to have ndim, shape, and dtype attributes. "
            f"Got {key!r} ({caller} needs {_KEY_HELP})"
        )
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(
                f"{caller} accepts a single key, but was given a key array of shape {tuple(shape)} != (). "
                "Use jax.vmap for batching."
            )
        return jax.random.key_data(key)
    if dtype != jnp.uint32:
        raise TypeError(
            f"JAX encountered invalid PRNG key data: expected key_data.dtype = uint32; got dtype={dtype} "
            f"({caller} needs {_KEY_HELP})"
        )
    if len(shape) == 1 and shape[0] in (2, 4):
        return key  # a legacy raw key (uint32[2] for threefry, uint32[4] for rbg)
    if len(shape) > 1 and shape[-1] in (2, 4):
        raise ValueError(
            f"{caller} accepts a single key, but was given a key array of shape {tuple(shape)} != (). "
            "Use jax.vmap for batching."
        )
    raise TypeError(
        f"JAX encountered invalid PRNG key data: expected key_data.shape to end with (2,); got shape="
        f"{tuple(shape)} ({caller} needs {_KEY_HELP}; legacy raw keys are uint32 arrays of shape (2,) or (4,))"
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

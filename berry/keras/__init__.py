"""berry for Keras 3: initializers with Keras' names, arguments and seed semantics.

The classes subclass ``keras.initializers.Initializer``, serialize with
``get_config``/``from_config`` and in ``.keras`` files (registered as
``"berry>ClassName"``), and draw their values from berry's keyed stream: an
int ``seed`` (and optional parameter ``name``) gives the same bits as
``berry.sample(..., seed=seed, name=name)``, ``berry.jax`` with
``jax.random.key(seed)``, and ``berry.torch``. Works with any installed Keras
backend; if Keras would try a missing TensorFlow and nothing chose a
backend, JAX or PyTorch is selected (see :mod:`berry.keras._backend`), so
import ``berry.keras`` before ``keras``. Needs Keras and one backend:
``pip install 'berry[keras]'``.

>>> import berry, berry.keras
>>> import keras
>>> layer = keras.layers.Dense(3, kernel_initializer=berry.keras.GlorotUniform(seed=0, name="dense"))
>>> layer.build((None, 4))
>>> expected = berry.sample((4, 3), "xavier", distribution="uniform", seed=0, name="dense")
>>> bool((keras.ops.convert_to_numpy(layer.kernel.value) == expected).all())
True
"""

from __future__ import annotations

from berry._optional import require
from berry.keras._backend import FALLBACK_BACKENDS, ensure_backend

require("keras", extra="keras", adapter="berry.keras")
ensure_backend()

try:
    import keras as _keras  # noqa: F401  (Keras picks its backend here, once)
except ModuleNotFoundError as error:  # Keras is installed but its backend is not
    if error.name not in ("tensorflow", *FALLBACK_BACKENDS):
        raise
    raise ModuleNotFoundError(
        f"berry.keras needs a Keras backend and none is installed (Keras tried {error.name!r}); install one, "
        "e.g. pip install 'berry[keras,jax]' or pip install 'berry[keras,torch]'",
        name=error.name,
    ) from error

from berry.keras import initializers as _initializers  # noqa: E402  (the backend must be chosen before Keras loads)
from berry.keras.initializers import *  # noqa: E402, F403  (the public names are listed once, in initializers.__all__)

__all__ = list(_initializers.__all__)

"""berry for Keras 3: every name of ``keras.initializers``, with Keras' arguments, meanings and seed semantics.

The classes subclass ``keras.initializers.Initializer``, serialize with
``get_config``/``from_config`` and in ``.keras`` files (registered as
``"berry>ClassName"``), and draw their values from berry's keyed stream: an
int ``seed`` (and optional parameter ``name``) gives the same bits as
``berry.sample(..., seed=seed, name=name)``, ``berry.jax`` with
``jax.random.key(seed)``, and ``berry.torch``. Every name
``keras.initializers`` has is here too: the classes, their snake_case
aliases (``glorot_normal``, ``zeros``, ...), Keras' legacy names
(``IdentityInitializer``, ``OrthogonalInitializer``, ``STFTInitializer``),
``Initializer`` (Keras' own base class), ``get``, ``serialize`` and
``deserialize``. :func:`init_model` initializes a whole Keras model from
declarative rules (:mod:`berry.keras.model`).

Works with any installed Keras backend; if Keras would try a missing
TensorFlow and nothing chose a backend, JAX or PyTorch is selected (see
:mod:`berry.keras._backend`), so import ``berry.keras`` before ``keras``.
Needs Keras and one backend: ``pip install 'berry[keras]'``.

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

from berry.keras import _constants, _lookup  # noqa: E402  (the backend must be chosen before Keras loads)
from berry.keras import initializers as _initializers  # noqa: E402
from berry.keras import model as _model  # noqa: E402
from berry.keras._constants import *  # noqa: E402, F403  (public names listed once, in each module's __all__)
from berry.keras._lookup import *  # noqa: E402, F403
from berry.keras.initializers import *  # noqa: E402, F403
from berry.keras.model import *  # noqa: E402, F403

# keras.initializers' other spellings of the same classes.
IdentityInitializer = _constants.Identity
STFTInitializer = _constants.STFT
OrthogonalInitializer = _initializers.Orthogonal
constant = _constants.Constant
zeros = _constants.Zeros
ones = _constants.Ones
identity = _constants.Identity
stft = _constants.STFT
glorot_normal = _initializers.GlorotNormal
glorot_uniform = _initializers.GlorotUniform
he_normal = _initializers.HeNormal
he_uniform = _initializers.HeUniform
lecun_normal = _initializers.LecunNormal
lecun_uniform = _initializers.LecunUniform
orthogonal = _initializers.Orthogonal
random_normal = _initializers.RandomNormal
random_uniform = _initializers.RandomUniform
truncated_normal = _initializers.TruncatedNormal
variance_scaling = _initializers.VarianceScaling

_ALIASES = [
    "IdentityInitializer", "OrthogonalInitializer", "STFTInitializer", "constant", "glorot_normal",
    "glorot_uniform", "he_normal", "he_uniform", "identity", "lecun_normal", "lecun_uniform", "ones",
    "orthogonal", "random_normal", "random_uniform", "stft", "truncated_normal", "variance_scaling", "zeros",
]
__all__ = [*_initializers.__all__, *_constants.__all__, *_lookup.__all__, *_ALIASES, *_model.__all__]

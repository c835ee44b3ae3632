"""``get``, ``serialize`` and ``deserialize`` with ``keras.initializers``' names and rules, resolving to berry's classes.

Every name ``keras.initializers.get`` resolves (the classes, their
snake_case names and Keras' legacy aliases ``IdentityInitializer``,
``OrthogonalInitializer``, ``STFTInitializer``, ``normal``, ``uniform``,
``zero``, ``one``) gives berry's class of the same meaning; berry adds its own
(``Xavier``/``xavier``, ``DeepNet``/``deep_net``/``deepnet``,
``BerryInitializer``/``berry``, ``xavier_normal``, ``kaiming_normal``, ...).
A config written by Keras for one of its own initializers deserializes to
berry's class, so a model saved with Keras' initializers loads with berry's.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import numpy as np

from berry._validation import closest
from berry.keras._constants import STFT, Constant, Identity, Ones, Zeros, _TensorValue
from berry.keras.initializers import (
    BerryInitializer,
    DeepNet,
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    LecunNormal,
    LecunUniform,
    Orthogonal,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    Xavier,
)

__all__ = ["ALL_OBJECTS_DICT", "deserialize", "get", "serialize"]

_CLASSES: tuple[type[keras.initializers.Initializer], ...] = (
    Constant, Identity, Ones, STFT, Zeros, GlorotNormal, GlorotUniform, HeNormal, HeUniform, LecunNormal,
    LecunUniform, Orthogonal, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
    BerryInitializer, DeepNet, Xavier,
)


def _snake_case(name: str) -> str:
    """Keras' ``to_snake_case``: ``GlorotUniform`` -> ``glorot_uniform``, ``STFT`` -> ``stft``."""
    from keras.src.utils.naming import to_snake_case

    return str(to_snake_case(name))


#: Every name berry.keras.get resolves, as keras.initializers.ALL_OBJECTS_DICT does for Keras' classes.
ALL_OBJECTS_DICT: dict[str, Any] = {
    "Initializer": keras.initializers.Initializer,
    "initializer": keras.initializers.Initializer,
    **{cls.__name__: cls for cls in _CLASSES},
    **{_snake_case(cls.__name__): cls for cls in _CLASSES},
    # Keras' aliases
    "IdentityInitializer": Identity,
    "normal": RandomNormal,
    "one": Ones,
    "STFTInitializer": STFT,
    "OrthogonalInitializer": Orthogonal,
    "uniform": RandomUniform,
    "zero": Zeros,
    # berry's
    "deepnet": DeepNet,
    "berry": BerryInitializer,
    "xavier_normal": GlorotNormal,
    "xavier_uniform": GlorotUniform,
    "kaiming_normal": HeNormal,
    "kaiming_uniform": HeUniform,
}

#: Modules whose serialized initializers name Keras' own classes (mapped to berry's by class name).
_KERAS_MODULES = ("keras.initializers", "keras.src.initializers")


def serialize(initializer: Any) -> dict[str, Any]:
    """The initializer's configuration as a Python dict (``keras.saving.serialize_keras_object``).

    Examples
    --------
    >>> import berry.keras
    >>> berry.keras.serialize(berry.keras.Ones())["registered_name"]
    'berry>Ones'
    """
    return keras.saving.serialize_keras_object(initializer)


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None) -> Any:
    """An initializer from its configuration: berry's class for every name Keras knows.

    Keras' own configs (``{"module": "keras.initializers", "class_name":
    "GlorotUniform", ...}``) and plain ``{"class_name": ..., "config": ...}``
    dicts become berry's class of that name; berry's configs
    (``"berry>GlorotUniform"``) and custom classes go through
    ``keras.saving.deserialize_keras_object``.

    Examples
    --------
    >>> import keras, berry.keras
    >>> type(berry.keras.deserialize(keras.initializers.serialize(keras.initializers.HeNormal(seed=1)))).__module__
    'berry.keras.initializers'
    """
    if isinstance(config, dict):
        name = config.get("class_name")
        ours = ALL_OBJECTS_DICT.get(name) if isinstance(name, str) else None
        module = str(config.get("module") or "")
        if ours is not None and not config.get("registered_name") and (not module or module.startswith(_KERAS_MODULES)):
            return ours.from_config(config.get("config") or {})
    return keras.saving.deserialize_keras_object(
        config, module_objects=ALL_OBJECTS_DICT, custom_objects=custom_objects
    )


def get(identifier: Any) -> Any:
    """An initializer from a name, a config dict, a class, a callable, a tensor or a NumPy array, as Keras' ``get``.

    * ``None`` gives ``None``;
    * a name (case-sensitive, as Keras: ``"GlorotUniform"``, ``"glorot_uniform"``,
      ``"OrthogonalInitializer"``, ...) or a config dict gives berry's class;
    * a backend tensor or NumPy array gives an initializer that returns its
      values for exactly its shape (cast to the dtype);
    * a class is instantiated (one of ``keras.initializers``' own classes as
      berry's class of the same name, as its name would give), a callable
      returned as it is.

    Anything else raises Keras' ``ValueError`` ("Could not interpret
    initializer identifier: ...") with a did-you-mean hint for names.

    Examples
    --------
    >>> import berry.keras
    >>> type(berry.keras.get("glorot_uniform")).__name__, type(berry.keras.get("DeepNet")).__name__
    ('GlorotUniform', 'DeepNet')
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        registered = keras.saving.get_registered_object(identifier)  # "berry>GlorotUniform", custom classes
        if identifier not in ALL_OBJECTS_DICT and registered is None:
            hint = closest(identifier, list(ALL_OBJECTS_DICT))
            raise ValueError(
                f"Could not interpret initializer identifier: {identifier}"
                + (f". Did you mean {hint!r}?" if hint else "")
                + f" (berry.keras knows: {', '.join(sorted(ALL_OBJECTS_DICT))})"
            )
        obj: Any = ALL_OBJECTS_DICT.get(identifier, registered)
    elif isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif keras.ops.is_tensor(identifier) or isinstance(identifier, (np.generic, np.ndarray)):
        obj = _TensorValue(identifier)
    elif inspect.isclass(identifier) and identifier.__module__.startswith("keras.") and \
            identifier.__name__ in ALL_OBJECTS_DICT:  # Keras' own class: berry's, as the name gives
        obj = ALL_OBJECTS_DICT[identifier.__name__]
    else:
        obj = identifier
    if callable(obj):
        return obj() if inspect.isclass(obj) else obj
    raise ValueError(
        f"Could not interpret initializer identifier: {identifier} (berry.keras.get takes a name, a config dict, "
        "an initializer, a class, a callable, a tensor or a NumPy array)"
    )

"""Keras 3 initializers backed by berry's keyed sampler.

Each class subclasses ``keras.initializers.Initializer`` and takes the
arguments of the Keras initializer of the same name (same defaults and
meanings: Keras' ``GlorotNormal`` is a truncated normal with its std
corrected, its ``TruncatedNormal`` truncates at two *parent* stds), plus
``name``: the parameter name hashed into berry's key with the seed.

Seeds follow Keras 3:

* an ``int`` seed is berry's seed: every call gives the same values, equal
  bit for bit to ``berry.sample(shape, ..., seed=seed, name=name)``;
* ``seed=None`` draws an int once, at construction, from Python's
  ``random`` (as Keras does, so ``keras.utils.set_random_seed`` makes it
  reproducible); every call of that instance then gives the same values, and
  a deserialized copy draws a new one (the config keeps ``seed=None``);
* a ``keras.random.SeedGenerator`` gives fresh values on every call: each
  call advances the generator and uses its two-word state as the seed, the
  way :func:`berry.jax.seed_from_key` reads a JAX key.

Layers call an initializer with the shape only, so two layers sharing one
int-seeded initializer get the same values (as in Keras); give each its own
``name`` (or seed) to make them differ. An int seed is Keras' seed, so a name
is optional here (unlike :func:`berry.sample`): Keras' own initializers give
the same values for the same seed too.

Every initializer is built through the adapter contract
(:mod:`berry._adapter`): its arguments are checked when it is constructed,
its shape when it is called, and its values are ``berry.sample``'s. Errors
begin with Keras' own wording (code and tests match on it), then say what
berry expected. The constant initializers (``Constant``, ``Zeros``, ``Ones``,
``Identity``, ``STFT``) are in :mod:`berry.keras._constants`, ``get``,
``serialize`` and ``deserialize`` in :mod:`berry.keras._lookup`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from berry._adapter import (
    TRUNCATED_2_STD,
    FanReader,
    Recipe,
    as_float,
    check_init_name,
    seed_from_words,
    variance_rule,
)
from berry._validation import check_int, check_positive, check_seed, check_shape, exact_dtype, resolve_dtype

__all__ = [
    "BerryInitializer",
    "DeepNet",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Initializer",
    "LecunNormal",
    "LecunUniform",
    "Orthogonal",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "Xavier",
]

#: Keras' own base class: subclass it (or berry's classes) for custom initializers.
Initializer = keras.initializers.Initializer

KERAS_MODES = ("fan_in", "fan_out", "fan_avg")
KERAS_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

_serializable = keras.saving.register_keras_serializable(package="berry")


def _standard_dtype(dtype: Any, *, floating: bool) -> str:
    """Keras' name of ``dtype`` (floatx by default), checked against berry's one dtype table."""
    name = str(keras.backend.standardize_dtype(keras.config.floatx() if dtype is None else dtype))
    if floating:
        resolve_dtype(name)
    else:  # exact values fill any dtype Keras can (complex, float8), as Keras' Zeros/Constant/Identity do
        exact_dtype(name)
    return name


def _law(distribution: str) -> dict[str, Any]:
    """The sample options of Keras' variance-scaling distributions."""
    if distribution == "truncated_normal":
        return dict(TRUNCATED_2_STD)
    return {"distribution": "normal" if distribution == "untruncated_normal" else "uniform"}


def _to_tensor(values: np.ndarray, dtype: str) -> Any:
    if dtype == "bfloat16":
        # Not every backend converts ml_dtypes' bfloat16 arrays; the values are bfloat16 already, so
        # going through float32 and casting back is exact.
        return keras.ops.cast(keras.ops.convert_to_tensor(values.astype(np.float32)), "bfloat16")
    return keras.ops.convert_to_tensor(values, dtype=dtype)


class BerryInitializer(keras.initializers.Initializer):
    """Any berry initializer as a Keras initializer: ``berry.sample(shape, init, ...)``.

    Parameters
    ----------
    init : str
        A registry rule (:func:`berry.list_initializations`) or a structural
        initializer (``"orthogonal"``, ``"eye"``, ...).
    distribution : str
        ``"normal"``, ``"truncated_normal"`` or ``"uniform"`` (berry's
        meanings: a truncated normal's std is corrected unless
        ``correct_variance=False`` is in ``options``).
    seed : int, None or keras.random.SeedGenerator
        See the module documentation.
    name : str
        The parameter name hashed into the key.
    **options
        Further keyword arguments of :func:`berry.sample` (``gain``, ``mean``,
        ``std``, ``bounds``, ``low``, ``high``, ...), JSON-serializable.

    Examples
    --------
    >>> import numpy as np, berry, berry.keras
    >>> init = berry.keras.BerryInitializer("he", seed=3, name="conv1")
    >>> w = keras.ops.convert_to_numpy(init((3, 3, 8, 16)))
    >>> bool((w == berry.sample((3, 3, 8, 16), "he", seed=3, name="conv1")).all())
    True
    """

    def __init__(
        self,
        init: str = "xavier",
        distribution: str = "normal",
        *,
        seed: Any = None,
        name: str = "",
        **options: Any,
    ) -> None:
        if not isinstance(init, str):
            raise TypeError(f"init must be the name of a berry initializer, got {init!r}")
        check_init_name(init)
        self.init = init
        self.distribution = distribution
        self.options = options
        self._setup(seed, name)

    def _setup(self, seed: Any, name: str) -> None:
        """Check the seed and name, and build the recipe: every argument is checked at construction."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a string (the parameter name), got {name!r}")
        self.name = name
        self._init_seed = seed
        if seed is None:
            seed = random.randint(1, 10**9)  # Keras' own default seed, reproducible under set_random_seed
        elif isinstance(seed, dict):
            seed = keras.saving.deserialize_keras_object(seed)
        if isinstance(seed, keras.random.SeedGenerator):
            self.seed: int | keras.random.SeedGenerator = seed
        elif isinstance(seed, (int, np.integer)):
            self.seed = check_seed(int(seed))  # a bool is an int to Keras too
        else:
            raise ValueError(
                "`seed` argument should be an instance of `keras.random.SeedGenerator()` or an integer. "
                f"Received: seed={seed} (berry.keras takes an int in [0, 2**64), None or a SeedGenerator)"
            )
        self.recipe = self.make_recipe()

    # -- what to sample (subclasses override) --

    def make_recipe(self) -> Recipe:
        """The adapter contract's :class:`~berry._adapter.Recipe`: what this initializer draws."""
        return Recipe.make(init=self.init, distribution=self.distribution, **self.options)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise a clear error for a shape Keras' own initializer of this name refuses."""

    @property
    def random_values(self) -> bool:
        return self.recipe.random

    #: -1 when a negative ``stddev`` is drawn as ``-(|stddev| z - mean)`` (Keras' ``mean + stddev z``, exactly).
    sign = 1.0

    # -- Keras protocol --

    def call_seed(self) -> int:
        """berry's seed for the next call (advances a ``SeedGenerator``)."""
        if isinstance(self.seed, keras.random.SeedGenerator):
            return seed_from_words(keras.ops.convert_to_numpy(self.seed.next()))
        return self.seed

    def values(self, shape: Sequence[int], dtype: Any = None, *, seed: int | None = None) -> np.ndarray:
        """The NumPy values of a call (for ``seed``, default this initializer's next seed)."""
        dims = check_shape("shape", shape)
        self.check_shape(dims)
        plan = self.recipe.plan(dims)
        dtype_name = _standard_dtype(dtype, floating=plan.random)
        if not plan.random or 0 in dims:
            return plan.values(0, self.name, dtype_name)  # no key is read, no generator advanced
        call_seed = self.call_seed() if seed is None else check_seed(seed)
        values = plan.values(call_seed, self.name, dtype_name)
        return -values if self.sign < 0 else values

    def __call__(self, shape: Sequence[int], dtype: Any = None) -> Any:
        dtype_name = _standard_dtype(dtype, floating=self.random_values)
        return _to_tensor(self.values(shape, dtype_name), dtype_name)

    def _base_config(self) -> dict[str, Any]:
        return {"seed": keras.saving.serialize_keras_object(self._init_seed), "name": self.name}

    def get_config(self) -> dict[str, Any]:
        return {"init": self.init, "distribution": self.distribution, **self.options, **self._base_config()}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"berry.keras.{type(self).__name__}({arguments})"


@_serializable
class VarianceScaling(BerryInitializer):
    r"""Variance scaling with Keras' meaning (``keras.initializers.VarianceScaling``).

    .. math::

        \sigma = \sqrt{\text{scale} / \max(1, n)}, \quad
        n \in \{fan_{in}, fan_{out}, (fan_{in} + fan_{out}) / 2\}

    ``"truncated_normal"`` (alias ``"normal"``, as in Keras) is a normal
    truncated to [-2, 2] standard units with its std corrected to
    :math:`\sigma`; ``"untruncated_normal"`` is :math:`N(0, \sigma^2)`;
    ``"uniform"`` is :math:`U(-\sqrt{3}\sigma, \sqrt{3}\sigma)`.

    Examples
    --------
    >>> import berry.keras
    >>> w = berry.keras.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed=0)((512, 256))
    >>> round(float(keras.ops.std(w)) * 16, 1)
    1.0
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: Any = None,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
        *,
        name: str = "",
    ) -> None:
        scale_value = as_float("scale", scale)
        if not scale_value > 0:
            raise ValueError(
                f"Argument `scale` must be positive float. Received: scale={scale} (berry.keras.{type(self).__name__})"
            )
        self.scale = scale_value
        if not isinstance(mode, str) or mode.lower() not in KERAS_MODES:
            raise ValueError(
                f"Invalid `mode` argument: {mode}. Please use one of {list(KERAS_MODES)} "
                f"(berry.keras.{type(self).__name__})"
            )
        self.mode = mode.lower()
        lowered = distribution.lower() if isinstance(distribution, str) else distribution
        if lowered == "normal":
            lowered = "truncated_normal"  # Keras' alias
        if lowered not in KERAS_DISTRIBUTIONS:
            raise ValueError(
                f"Invalid `distribution` argument: {distribution}.Please use one of {list(KERAS_DISTRIBUTIONS)} "
                f"(berry.keras.{type(self).__name__})"
            )
        self.distribution = lowered
        self.input_axes = None if input_axes is None else [check_int("input_axes", a) for a in input_axes]
        self.output_axes = None if output_axes is None else [check_int("output_axes", a) for a in output_axes]
        self._setup(seed, name)

    def make_recipe(self) -> Recipe:
        fans = FanReader("keras", self.input_axes, self.output_axes)
        return Recipe.make(init=self.rule_of_scale(), fans=fans, **_law(self.distribution))

    def rule_of_scale(self) -> Any:
        """The scale rule: variance scaling with this ``scale`` and ``mode``."""
        return variance_rule(self.scale, self.mode)

    def get_config(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
            **self._base_config(),
        }


class _NamedVarianceScaling(VarianceScaling):
    """A Keras named variance rule, sampled as berry's registry rule of the same meaning."""

    rule = "xavier"
    keras_scale = 1.0
    keras_mode = "fan_avg"
    keras_distribution = "truncated_normal"

    def __init__(
        self,
        seed: Any = None,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
        *,
        name: str = "",
    ) -> None:
        super().__init__(
            self.keras_scale,
            self.keras_mode,
            self.keras_distribution,
            seed,
            input_axes,
            output_axes,
            name=name,
        )

    def rule_of_scale(self) -> Any:
        # The registry rule computes the same std as the seed writes it, so the values equal
        # berry.sample(shape, rule, ...) bit for bit.
        return self.rule

    def get_config(self) -> dict[str, Any]:
        return {"input_axes": self.input_axes, "output_axes": self.output_axes, **self._base_config()}


@_serializable
class GlorotNormal(_NamedVarianceScaling):
    r"""Glorot (Xavier) truncated normal, as Keras': berry's ``"xavier"`` rule, truncated at 2 std.

    Glorot & Bengio (2010). :math:`\sigma = \sqrt{2 / (fan_{in} + fan_{out})}`, std corrected.

    Examples
    --------
    >>> import berry, berry.keras, numpy as np
    >>> w = keras.ops.convert_to_numpy(berry.keras.GlorotNormal(seed=1)((4, 3)))
    >>> spec = dict(distribution="truncated_normal", seed=1, name="")
    >>> bool((w == berry.sample((4, 3), "xavier", **spec)).all())
    True
    """


@_serializable
class GlorotUniform(_NamedVarianceScaling):
    r"""Glorot (Xavier) uniform, as Keras': :math:`U(-a, a)`, :math:`a = \sqrt{6 / (fan_{in} + fan_{out})}`.

    Glorot & Bengio (2010).

    Examples
    --------
    >>> import berry.keras
    >>> w = berry.keras.GlorotUniform(seed=1)((4, 3))
    >>> bool(keras.ops.max(keras.ops.abs(w)) <= (6 / 7) ** 0.5)
    True
    """

    keras_distribution = "uniform"


@_serializable
class HeNormal(_NamedVarianceScaling):
    r"""He (Kaiming) truncated normal, as Keras': :math:`\sigma = \sqrt{2 / fan_{in}}`, std corrected.

    He et al. (2015), "Delving Deep into Rectifiers". berry's ``"he"`` rule.

    Examples
    --------
    >>> import berry.keras
    >>> w = berry.keras.HeNormal(seed=1)((512, 512))
    >>> round(float(keras.ops.std(w)) * 16, 1)
    1.0
    """

    rule = "he"
    keras_scale = 2.0
    keras_mode = "fan_in"


@_serializable
class HeUniform(_NamedVarianceScaling):
    r"""He (Kaiming) uniform, as Keras': :math:`U(-a, a)`, :math:`a = \sqrt{6 / fan_{in}}`.

    He et al. (2015).

    Examples
    --------
    >>> import berry.keras
    >>> w = berry.keras.HeUniform(seed=1)((6, 3))
    >>> bool(keras.ops.max(keras.ops.abs(w)) <= 1.0)
    True
    """

    rule = "he"
    keras_scale = 2.0
    keras_mode = "fan_in"
    keras_distribution = "uniform"


@_serializable
class LecunNormal(_NamedVarianceScaling):
    r"""LeCun truncated normal, as Keras': :math:`\sigma = \sqrt{1 / fan_{in}}`, std corrected.

    LeCun et al. (1998), "Efficient BackProp"; Klambauer et al. (2017) for SELU.

    Examples
    --------
    >>> import berry.keras
    >>> w = berry.keras.LecunNormal(seed=1)((256, 256))
    >>> round(float(keras.ops.std(w)) * 16, 1)
    1.0
    """

    rule = "lecun"
    keras_mode = "fan_in"


@_serializable
class LecunUniform(_NamedVarianceScaling):
    r"""LeCun uniform, as Keras': :math:`U(-a, a)`, :math:`a = \sqrt{3 / fan_{in}}`.

    LeCun et al. (1998).

    Examples
    --------
    >>> import berry.keras
    >>> w = berry.keras.LecunUniform(seed=1)((3, 4))
    >>> bool(keras.ops.max(keras.ops.abs(w)) <= 1.0)
    True
    """

    rule = "lecun"
    keras_mode = "fan_in"
    keras_distribution = "uniform"


@_serializable
class RandomNormal(BerryInitializer):
    r"""Normal, as Keras' ``RandomNormal``: :math:`N(\text{mean}, \text{stddev}^2)`.

    Examples
    --------
    >>> import berry.keras
    >>> w = berry.keras.RandomNormal(mean=1.0, stddev=0.5, seed=0)((100, 100))
    >>> round(float(keras.ops.mean(w)), 1), round(float(keras.ops.std(w)), 1)
    (1.0, 0.5)
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: Any = None, *, name: str = "") -> None:
        self.mean = as_float("mean", mean)
        self.stddev = as_float("stddev", stddev)
        self.sign = -1.0 if self.stddev < 0 else 1.0
        self._setup(seed, name)

    def _location(self) -> dict[str, Any]:
        """``mean`` and ``std`` for berry: a negative stddev draws ``-(-mean + |stddev| z)``, exactly Keras' law."""
        return {"mean": self.sign * self.mean, "std": abs(self.stddev)}

    def make_recipe(self) -> Recipe:
        return Recipe.make(distribution="normal", **self._location())

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, **self._base_config()}


@_serializable
class TruncatedNormal(RandomNormal):
    r"""Truncated normal, as Keras' ``TruncatedNormal``: ``stddev`` is the parent normal's.

    Values are :math:`\text{mean} + \text{stddev}\, z`, :math:`z \sim N(0, 1)`
    conditioned on :math:`|z| \le 2` (no variance correction, as in Keras).

    Examples
    --------
    >>> import berry.keras
    >>> w = berry.keras.TruncatedNormal(stddev=1.0, seed=0)((1000,))
    >>> bool(keras.ops.max(keras.ops.abs(w)) <= 2.0)
    True
    """

    def make_recipe(self) -> Recipe:
        bounds = TRUNCATED_2_STD["bounds"]
        return Recipe.make(distribution="truncated_normal", bounds=bounds, correct_variance=False, **self._location())


@_serializable
class RandomUniform(BerryInitializer):
    r"""Uniform, as Keras' ``RandomUniform``: :math:`U(\text{minval}, \text{maxval})`.

    Examples
    --------
    >>> import berry.keras
    >>> w = berry.keras.RandomUniform(0.0, 2.0, seed=0)((1000,))
    >>> bool(keras.ops.min(w) >= 0.0), bool(keras.ops.max(w) <= 2.0)
    (True, True)
    """

    def __init__(
        self, minval: float = -0.05, maxval: float = 0.05, seed: Any = None, *, name: str = ""
    ) -> None:
        self.minval = as_float("minval", minval)
        self.maxval = as_float("maxval", maxval)
        if self.minval > self.maxval:
            raise ValueError(
                f"minval must be <= maxval, got minval={minval!r}, maxval={maxval!r} (Keras' backends disagree on "
                "such an interval: JAX returns minval everywhere; berry.keras.RandomUniform refuses it)"
            )
        self._setup(seed, name)

    def make_recipe(self) -> Recipe:
        return Recipe.make(distribution="uniform", low=self.minval, high=self.maxval)

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, **self._base_config()}


@_serializable
class Orthogonal(BerryInitializer):
    r"""Orthogonal, as Keras' ``Orthogonal``: the ``(prod(shape[:-1]), shape[-1])`` matrix is orthogonal.

    Saxe, McClelland & Ganguli (2014). Its rows or columns (whichever are
    fewer) are orthonormal, times ``gain``.

    Examples
    --------
    >>> import numpy as np, berry.keras
    >>> w = keras.ops.convert_to_numpy(berry.keras.Orthogonal(seed=0)((6, 4)))
    >>> bool(np.allclose(w.T @ w, np.eye(4), atol=1e-5))
    True
    """

    def __init__(self, gain: float = 1.0, seed: Any = None, *, name: str = "") -> None:
        self.gain = as_float("gain", gain)
        self._setup(seed, name)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) < 2:
            raise ValueError(
                "The tensor to initialize must be at least two-dimensional. Received: "
                f"shape={shape} of rank {len(shape)}. (berry.keras.Orthogonal)"
            )

    def make_recipe(self) -> Recipe:
        return Recipe.make(init="orthogonal", gain=self.gain)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain, **self._base_config()}


@_serializable
class Xavier(BerryInitializer):
    r"""berry's seed rule ``xavier``: :math:`N(0, \sigma^2)`, :math:`\sigma = g\sqrt{2 / (fan_{in} + fan_{out})}`.

    Glorot & Bengio (2010). Untruncated by default (compare :class:`GlorotNormal`).

    Examples
    --------
    >>> import berry, berry.keras, numpy as np
    >>> w = keras.ops.convert_to_numpy(berry.keras.Xavier(seed=7, name="w")((64, 32)))
    >>> bool((w == berry.sample((64, 32), "xavier", seed=7, name="w")).all())
    True
    """

    def __init__(
        self, distribution: str = "normal", gain: float = 1.0, seed: Any = None, *, name: str = ""
    ) -> None:
        super().__init__(
            type(self).rule, distribution, seed=seed, name=name, gain=check_positive("gain", as_float("gain", gain))
        )

    rule = "xavier"

    def get_config(self) -> dict[str, Any]:
        return {"distribution": self.distribution, "gain": self.options["gain"], **self._base_config()}


@_serializable
class DeepNet(Xavier):
    r"""berry's seed rule ``deepnet``: :math:`N(0, \sigma^2)`, :math:`\sigma = g\sqrt{2 / fan_{out}}`.

    He et al. (2015), the backward form (:func:`berry.deepnet`, He's fan-out
    rule; not the DeepNet/DeepNorm transformer scheme of Wang et al. 2022,
    :func:`berry.torch.schemes.deepnet`).

    Examples
    --------
    >>> import berry, berry.keras, numpy as np
    >>> w = keras.ops.convert_to_numpy(berry.keras.DeepNet(seed=7, name="conv1")((64, 32)))
    >>> bool((w == berry.sample((64, 32), "deepnet", seed=7, name="conv1")).all())
    True
    """

    rule = "deepnet"


_serializable(BerryInitializer)

"""Keras 3's non-random initializers: ``Constant`` (scalars and arrays), ``Zeros``, ``Ones``, ``Identity``, ``STFT``.

They take Keras' arguments and defaults, raise Keras' errors first (then
berry's explanation), fill any dtype Keras can (integers and bool too), and
compute their values with NumPy, in float64 where there is arithmetic,
rounded once to the dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from berry._adapter import Recipe, as_float
from berry._validation import check_shape, exact_dtype
from berry.keras.initializers import BerryInitializer, _serializable, _standard_dtype

__all__ = ["STFT", "Constant", "Identity", "Ones", "Zeros"]


def _numpy_value(value: Any) -> np.ndarray:
    """A Keras constant's value (a number, a list, a NumPy array or a backend tensor) as a NumPy array."""
    array = keras.ops.convert_to_numpy(value) if keras.ops.is_tensor(value) else np.asarray(value)
    if array.dtype.kind not in "biufc":
        raise TypeError(f"value must be a number or an array of numbers, got {value!r} (berry.keras.Constant)")
    return array


def _broadcastable(source: tuple[int, ...], target: tuple[int, ...]) -> bool:
    return len(source) <= len(target) and all(s in (1, t) for s, t in zip(source[::-1], target[::-1], strict=False))


class _ExactValues(BerryInitializer):
    """Initializers whose values follow from the shape alone: no seed, no name, any dtype."""

    def _setup_exact(self) -> None:
        self.name = ""
        self._init_seed = None
        self.seed = 0

    @property
    def random_values(self) -> bool:
        return False

    def exact_values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The values for ``shape`` in ``dtype`` (subclasses)."""
        raise NotImplementedError

    def values(self, shape: Sequence[int], dtype: Any = None, *, seed: int | None = None) -> np.ndarray:
        dims = check_shape("shape", shape)
        self.check_shape(dims)
        return self.exact_values(dims, exact_dtype(_standard_dtype(dtype, floating=False)))

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"berry.keras.{type(self).__name__}({arguments})"


@_serializable
class Constant(_ExactValues):
    """A constant, as Keras' ``Constant``: a number or an array broadcast to the shape.

    The value is cast to the dtype once (as ``keras.ops.cast``: ``2.5`` in an
    integer dtype is ``2``) and broadcast with NumPy's rules.

    Examples
    --------
    >>> import berry.keras
    >>> keras.ops.convert_to_numpy(berry.keras.Constant(2.5)((2,))).tolist()
    [2.5, 2.5]
    >>> keras.ops.convert_to_numpy(berry.keras.Constant([1.0, 2.0])((2, 2))).tolist()
    [[1.0, 2.0], [1.0, 2.0]]
    """

    def __init__(self, value: Any = 0.0) -> None:
        self.value = value
        self._array = _numpy_value(value)
        self._setup_exact()

    def exact_values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        if not _broadcastable(self._array.shape, shape):
            raise ValueError(
                f"Incompatible shapes for broadcasting: shapes=[{self._array.shape}, {shape}] "
                f"(berry.keras.{type(self).__name__}'s value must broadcast to the shape, by NumPy's rules)"
            )
        # reshape: np.ascontiguousarray makes a 0-d array 1-d, and shape=() must stay a scalar
        return np.ascontiguousarray(np.broadcast_to(self._array.astype(dtype), shape)).reshape(shape)

    def get_config(self) -> dict[str, Any]:
        return {"value": keras.saving.serialize_keras_object(self.value)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Constant:
        return cls(keras.saving.deserialize_keras_object(config["value"]))


@_serializable
class Zeros(Constant):
    """Zeros, as Keras' ``Zeros`` (any dtype).

    Examples
    --------
    >>> import berry.keras
    >>> float(keras.ops.sum(berry.keras.Zeros()((2, 3))))
    0.0
    """

    def __init__(self) -> None:
        super().__init__(0.0)

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Zeros:
        return cls(**config)


@_serializable
class Ones(Zeros):
    """Ones, as Keras' ``Ones`` (any dtype).

    Examples
    --------
    >>> import berry.keras
    >>> float(keras.ops.sum(berry.keras.Ones()((2, 3))))
    6.0
    """

    def __init__(self) -> None:
        Constant.__init__(self, 1.0)


@_serializable
class _TensorValue(Constant):
    """What ``get(tensor)`` returns, as Keras: exactly the tensor's values, for exactly its shape."""

    def exact_values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        if shape != self._array.shape:
            raise ValueError(
                f"Expected `shape` to be {self._array.shape} for direct tensor as initializer. Received "
                f"shape={shape} (berry.keras.get(tensor) fills only the tensor's own shape)"
            )
        return super().exact_values(shape, dtype)


@_serializable
class Identity(_ExactValues):
    """The identity matrix times ``gain``, as Keras' ``Identity`` (2-D shapes only).

    Examples
    --------
    >>> import berry.keras
    >>> keras.ops.convert_to_numpy(berry.keras.Identity(2.0)((2, 3))).tolist()
    [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
    """

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = as_float("gain", gain)
        self._setup_exact()
        self.recipe = Recipe.make(init="eye", gain=self.gain)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 2:  # Keras' Identity fills matrices only (berry's "eye" would batch the leading axes)
            raise ValueError(
                "Identity matrix initializer can only be used for 2D matrices. "
                f"Received: shape={shape} of rank {len(shape)}. (berry.keras.Identity)"
            )

    def exact_values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self.recipe.values(shape, seed=0, name="", dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain}


def _scipy_signal() -> Any:
    try:
        import scipy.signal
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "berry.keras.STFT needs SciPy for named windows (as Keras' STFT does); install it with: pip install scipy",
            name="scipy",
        ) from None
    return scipy.signal


@_serializable
class STFT(_ExactValues):
    r"""Short-time Fourier transform kernels for a convolution, as Keras' ``STFT`` (alias ``STFTInitializer``).

    For a kernel of shape ``(T, C, F)`` (frame length, input channels,
    ``F = fft_length // 2 + 1`` frequency bins) with :math:`N = 2 (F - 1)`:

    .. math::

        W_{t, c, f} = \frac{w_t}{s}\,\cos\!\left(-\frac{2\pi t f}{N}\right) \ (\text{side="real"}),
        \quad \sin(\cdot) \ (\text{side="imag"})

    where ``w`` is the window (a ``scipy.signal.get_window`` name, periodic
    when ``periodic``; an array of ``T`` values; or ``None`` for ones) and
    ``s`` the scaling: :math:`\sqrt{\sum_t w_t^2}` (``"density"``),
    :math:`\sum_t |w_t|` (``"spectrum"``) or 1 (``None``, or no window). Computed in
    float64 and rounded once (Keras computes in the output dtype). Every
    input channel gets the same kernel (Keras returns ``(T, 1, F)`` whatever
    ``C``).

    Examples
    --------
    >>> import berry.keras
    >>> w = keras.ops.convert_to_numpy(berry.keras.STFT("real", None, None)((4, 1, 3)))
    >>> w[:, 0, 1].round(6).tolist()
    [1.0, 0.0, -1.0, -0.0]
    """

    def __init__(
        self, side: str = "real", window: Any = "hann", scaling: str | None = "density", periodic: bool = False
    ) -> None:
        if side not in ("real", "imag"):
            raise ValueError(f"side should be 'real' or 'imag', not {side} (berry.keras.STFT)")
        if isinstance(window, str):
            _scipy_signal().get_window(window, 1)  # scipy's own error for an unknown window, as Keras
        elif window is not None:
            window = [float(v) for v in np.asarray(window, dtype=np.float64).reshape(-1)]
        if scaling is not None and scaling not in ("density", "spectrum"):
            raise ValueError(
                "Scaling is invalid, it must be `None`, 'density' or 'spectrum'. "
                f"Received scaling={scaling} (berry.keras.STFT)"
            )
        self.side = side
        self.window = window
        self.scaling = scaling
        self.periodic = bool(periodic)
        self._setup_exact()

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 3:
            unpack = (
                f"not enough values to unpack (expected 3, got {len(shape)})" if len(shape) < 3
                else "too many values to unpack (expected 3)"
            )
            raise ValueError(
                f"{unpack}: berry.keras.STFT fills (frame_length, input_channels, fft_length // 2 + 1) kernels, "
                f"got shape={shape}"
            )
        if shape[2] < 2:
            raise ValueError(
                f"berry.keras.STFT needs at least 2 frequency bins (fft_length >= 2), got shape={shape}: with one bin "
                "the frequency step 1 / (2 * (bins - 1)) is undefined (Keras returns NaN)"
            )

    def _window(self, frame_length: int) -> np.ndarray:
        if self.window is None:
            return np.ones(frame_length)
        if isinstance(self.window, str):
            return np.asarray(_scipy_signal().get_window(self.window, frame_length, self.periodic), dtype=np.float64)
        window = np.asarray(self.window, dtype=np.float64)
        if window.shape != (frame_length,):
            raise ValueError(
                "The shape of `window` must be equal to [frame_length].Received: window "
                f"shape={window.shape} (berry.keras.STFT, frame_length={frame_length})"
            )
        return window

    def exact_values(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        frame_length, channels, bins = shape
        window = self._window(frame_length)
        scale = 1.0  # as Keras, the scaling applies to a window only
        if self.window is not None and self.scaling == "density":
            scale = math.sqrt(float(np.sum(window**2)))
        elif self.window is not None and self.scaling == "spectrum":
            scale = float(np.sum(np.abs(window)))
        angle = -2.0 * math.pi * np.outer(np.arange(frame_length), np.arange(bins)) / (2 * (bins - 1))
        kernel = (np.cos(angle) if self.side == "real" else np.sin(angle)) * (window / scale)[:, None]
        return np.ascontiguousarray(np.broadcast_to(kernel[:, None, :], (frame_length, channels, bins)).astype(dtype))

    def get_config(self) -> dict[str, Any]:
        return {"side": self.side, "window": self.window, "periodic": self.periodic, "scaling": self.scaling}




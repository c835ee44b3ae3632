"""The probe's networks: the layer algebra (dense or circular convolution) and the layers' weights.

``arch="mlp"``: dense layers ``h = x W`` with ``W`` of shape ``(width, width)``.
``arch="conv"``: a ``kernel_size`` x ``kernel_size`` convolution over
``width`` channels on square images (channels last), with circular padding
so that every position sees a full receptive field, as in the mean-field
theory of convolutional networks (Xiao et al. 2018, "Dynamical Isometry and a
Mean Field Theory of CNNs"). The rule sees the kernel's shape
``(k, k, width, width)``, so its fans include the receptive field.

Backpropagation is exact (the adjoints of the forward products, tested
against torch autograd).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Network", "WeightSource"]

# Weights with fewer entries than this are drawn in one thread.
_THREADED_SIZE = 2**20


@dataclass(frozen=True)
class Network:
    """The layer algebra of one architecture: weight shapes, forward and backward products."""

    arch: str
    width: int
    kernel_size: int = 3
    image_size: int = 8

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.arch == "mlp":
            return (self.width, self.width)
        return (self.kernel_size, self.kernel_size, self.width, self.width)

    @property
    def fans(self) -> tuple[int, int]:
        """(fan_in, fan_out) of a layer's weight, as the rules see them (channels-last layout)."""
        shape = self.weight_shape
        return math.prod(shape[:-1]), math.prod(shape[:-2] + shape[-1:])

    def input_shape(self, batch: int) -> tuple[int, ...]:
        if self.arch == "mlp":
            return (batch, self.width)
        return (batch, self.image_size, self.image_size, self.width)

    def _offsets(self) -> list[tuple[int, int, int, int]]:
        half = self.kernel_size // 2
        return [(i, j, i - half, j - half) for i in range(self.kernel_size) for j in range(self.kernel_size)]

    # Every product is summed in float64 and rounded once to the network's dtype. BLAS sums float32
    # products in an order that depends on the CPU's kernel (AVX2, AVX-512), so float32 sums would
    # make the probe's numbers, and the transcripts in the docs, differ from one machine to another.

    def forward(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """``x W``, or the circular convolution ``h[b, y, x] = sum_k x[b, y + dy, x + dx] K[dy, dx]``."""
        wide_x, wide_w = _wide(x), _wide(weight)
        if self.arch == "mlp":
            return (wide_x @ wide_w).astype(x.dtype)
        # One matrix product per kernel offset: the same work as im2col without its k*k-fold copy.
        out = np.zeros((*x.shape[:-1], weight.shape[-1]))
        for i, j, dy, dx in self._offsets():
            out += np.roll(wide_x, (-dy, -dx), axis=(1, 2)) @ wide_w[i, j]
        return out.astype(x.dtype)

    def backward(self, grad: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """The gradient with respect to the input, given the gradient ``grad`` of the output."""
        wide_grad, wide_w = _wide(grad), _wide(weight)
        if self.arch == "mlp":
            return (wide_grad @ wide_w.T).astype(grad.dtype)
        out = np.zeros((*grad.shape[:-1], weight.shape[-2]))
        for i, j, dy, dx in self._offsets():
            out += np.roll(wide_grad @ wide_w[i, j].T, (dy, dx), axis=(1, 2))
        return out.astype(grad.dtype)

    def weight_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """The gradient with respect to the weight."""
        wide_x, wide_grad = _wide(x), _wide(grad)
        if self.arch == "mlp":
            return (wide_x.T @ wide_grad).astype(grad.dtype)
        rows = wide_grad.reshape(-1, grad.shape[-1])
        out = np.empty((self.kernel_size, self.kernel_size, x.shape[-1], grad.shape[-1]), dtype=grad.dtype)
        for i, j, dy, dx in self._offsets():
            out[i, j] = np.roll(wide_x, (-dy, -dx), axis=(1, 2)).reshape(-1, x.shape[-1]).T @ rows
        return out


def _wide(values: np.ndarray) -> np.ndarray:
    """``values`` in float64 (no copy when they already are)."""
    return values.astype(np.float64, copy=False)


class WeightSource:
    """Each layer's weight, drawn with :func:`berry.sample` whenever it is needed.

    Layer ``i``'s weight is ``sample(shape, init, distribution=..., seed=seed,
    name=f"layer{i}.weight", dtype=dtype, gain=gain)``: exactly the tensor a
    user gets from that call. Weights are never cached: the keyed stream gives
    the same bits every time, so the backward pass draws a layer's weight
    again instead of keeping every layer's in memory.
    """

    def __init__(self, network: Network, distribution: str, seed: int, gain: float, dtype: str) -> None:
        self.network, self.seed, self.dtype = network, seed, dtype
        self.distribution, self.gain = distribution, gain

    def spec(self, init: Any) -> Any:
        """The validated :class:`berry.InitSpec` of ``init`` (a rule or a structural initializer)."""
        from berry.sampling import InitSpec

        if not (isinstance(init, str) or callable(init)):
            raise TypeError(f"inits must hold rule names, rule callables or structural initializer names, "
                            f"got {init!r}")
        return InitSpec(init, distribution=self.distribution, gain=self.gain, dtype=self.dtype)

    def rule_std(self, spec: Any) -> float | None:
        """The std a scale rule's spec gives the layers, or None for a structural initializer."""
        return float(spec.scale(self.network.weight_shape)) if spec.kind == "rule" else None

    def weight(self, layer: int, spec: Any) -> np.ndarray:
        """Layer ``layer``'s weight (1-based) from the spec made by :meth:`spec`."""
        shape = self.network.weight_shape
        # Small weights in one thread: starting threads costs more than it gives there (the bits are the same).
        threads = 1 if math.prod(shape) < _THREADED_SIZE else None
        return spec(shape, seed=self.seed, name=f"layer{layer}.weight", threads=threads)

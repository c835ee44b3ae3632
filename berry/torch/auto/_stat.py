"""What moment propagation knows about one node of a recorded graph (see :mod:`berry.torch.auto._propagate`)."""

from __future__ import annotations

import dataclasses

from berry.torch.auto._chain import ChainMoments, Composite

__all__ = ["Stat"]


@dataclasses.dataclass
class Stat:
    """What the propagation knows about one node (see the module docstring)."""

    kind: str  #: "data", "point", "const", "index", "param", "none"
    q: float = 0.0
    m: float = 0.0
    s: float = 0.0
    gauss: bool = True
    value: float | None = None  #: a point's or scalar constant's value
    axes: tuple[str, ...] = ()
    fresh: int = 0  #: weight uses (bitset of ordinals) that make it zero-mean and independent of the rest
    sumsq: float | None = None  #: a softmax output: mean over rows of sum_j p_j^2
    count: float | None = None  #: a softmax output: mean visible row length
    chain: tuple[Composite, ChainMoments] | None = None
    notes: tuple[str, ...] = ()

    @property
    def var(self) -> float:
        return max(self.q - self.m * self.m, 0.0)

    @property
    def cov(self) -> float:
        return max(self.s - self.m * self.m, 0.0)

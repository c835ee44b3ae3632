"""ZerO (Zhao et al. 2021): identity, partial identity or Hadamard transforms; no randomness."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from berry._validation import check_choice, check_int
from berry.torch._model import RulesLike
from berry.torch._tensors import fill_from_function
from berry.torch.schemes._fixup import branches_of
from berry.torch.schemes._report import SchemeReport, SchemeRules, apply_rules
from berry.torch.schemes._roles import ModelParameters, Patterns, PatternsLike, Preset, RoleTable, exact

__all__ = ["ZERO_PRESETS", "ZERO_ROLES", "hadamard", "zero", "zero_matrix"]

ZERO_ROLES = RoleTable(
    "zero",
    roles=("zero", "classifier"),
    presets=(
        Preset("residual_mlp", {"zero": ("blocks.*.layers.*.weight",), "classifier": ("head.weight", "head.bias")}),
        Preset("resnet", {"zero": ("layer*.*.conv*.weight",), "classifier": ("fc.weight", "fc.bias")}),
        Preset("mlp", {"zero": (), "classifier": ()}),  # no residual branches: only taken by name
    ),
    required=(("zero",),),
)
ZERO_PRESETS: dict[str, dict[str, Patterns]] = ZERO_ROLES.as_dict()


def hadamard(order: int) -> np.ndarray:
    """The ``2^order x 2^order`` Sylvester Hadamard matrix of +-1 entries: ``H[i, j] = (-1)^popcount(i & j)``.

    >>> hadamard(2).astype(int).tolist()
    [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]
    """
    order = check_int("order", order, minimum=0)
    size = 2**order
    out = np.empty((size, size))
    for first in range(0, size, _ROWS_PER_CHUNK):
        rows = slice(first, min(first + _ROWS_PER_CHUNK, size))
        out[rows] = _sylvester(rows, slice(0, size))
    return out


def zero_matrix(out_features: int, in_features: int, *, hadamard_scale: str = "paper") -> np.ndarray:
    """ZerO's deterministic matrix for a ``(out, in)`` weight (Zhao et al. 2021, Algorithm 1).

    "ZerO Initialization: Initializing Neural Networks with only Zeros and
    Ones". With ``P`` outputs and ``Q`` inputs (``y = W x``):

    .. math::

        W = I \\ (P = Q), \\qquad W = I^* \\ (P < Q), \\qquad
        W = c\\, I^* H_m I^* \\ (P > Q),\\ m = \\lceil \\log_2 P \\rceil,\\ c = 2^{-(m-1)/2}

    where ``I*`` is the partial identity (ones on the main diagonal of a
    rectangular matrix) and ``H_m`` the Sylvester Hadamard matrix: an
    expanding layer spreads its inputs over all outputs instead of leaving
    ``P - Q`` of them at zero. ``hadamard_scale="orthonormal"`` uses
    ``c = 2^{-m/2}`` instead (``H_m`` normalized to an orthogonal matrix, as
    the authors' published MNIST example does).

    Only the ``P x Q`` entries are computed, each from the bit-parity formula
    ``H[i, j] = (-1)^popcount(i & j)`` (never the ``2^m x 2^m`` matrix), in
    chunks of rows: time and memory scale with the output (a GPT-2 head,
    50257 x 768, needs its 309 MB of float64 and about 4 MB more).

    >>> zero_matrix(2, 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    >>> (zero_matrix(3, 2) * 2**0.5).round(6).tolist()
    [[1.0, 1.0], [1.0, -1.0], [1.0, 1.0]]
    """
    out_features = check_int("out_features", out_features, minimum=1)
    in_features = check_int("in_features", in_features, minimum=1)
    hadamard_scale = check_choice("hadamard_scale", hadamard_scale, ("paper", "orthonormal"))
    out = np.empty((out_features, in_features))
    for first in range(0, out_features, max(1, _ELEMENTS_PER_CHUNK // in_features)):
        rows = slice(first, min(first + max(1, _ELEMENTS_PER_CHUNK // in_features), out_features))
        out[rows] = _zero_block(out_features, in_features, rows, slice(0, in_features), hadamard_scale)
    return out


#: Rows (of ``hadamard``) and elements (of ``zero_matrix``) computed at once: bounds the integer temporaries.
_ROWS_PER_CHUNK = 256
_ELEMENTS_PER_CHUNK = 1 << 18


def _sylvester(rows: slice, cols: slice) -> np.ndarray:
    """``(-1)^popcount(i & j)`` for ``i`` in ``rows``, ``j`` in ``cols``: a block of any Sylvester Hadamard matrix."""
    bits = np.bitwise_and.outer(
        np.arange(rows.start, rows.stop, dtype=np.uint64), np.arange(cols.start, cols.stop, dtype=np.uint64)
    )
    for shift in (32, 16, 8, 4, 2, 1):  # fold the bits onto the lowest: its value is the parity
        bits ^= bits >> np.uint64(shift)
    bits &= np.uint64(1)
    signs = bits.astype(np.float64)
    del bits
    signs *= -2.0
    signs += 1.0
    return signs


def _zero_block(out_features: int, in_features: int, rows: slice, cols: slice, hadamard_scale: str) -> np.ndarray:
    """Rows ``rows`` and columns ``cols`` of ``zero_matrix(out_features, in_features)``."""
    if out_features <= in_features:  # (partial) identity
        return np.equal.outer(np.arange(rows.start, rows.stop), np.arange(cols.start, cols.stop)).astype(np.float64)
    order = (out_features - 1).bit_length()  # ceil(log2 P), exactly
    c = 2.0 ** (-(order - 1) / 2) if hadamard_scale == "paper" else 2.0 ** (-order / 2)
    block = _sylvester(rows, cols)
    block *= c
    return block


def _zero_values(region: tuple[slice, ...], *, shape: tuple[int, ...], hadamard_scale: str) -> np.ndarray:
    """A region of ZerO's weight: the matrix on the (out, in) plane at the kernel's center, zeros elsewhere."""
    rows, cols, *kernel = region
    values = np.zeros(tuple(s.stop - s.start for s in region))
    center = [k // 2 for k in shape[2:]]
    if all(s.start <= c < s.stop for s, c in zip(kernel, center, strict=True)):
        at = (slice(None), slice(None), *(c - s.start for s, c in zip(kernel, center, strict=True)))
        values[at] = _zero_block(shape[0], shape[1], rows, cols, hadamard_scale)
    return values


def _zero_fill(tensor: torch.Tensor, *, seed: int, name: str, hadamard_scale: str) -> None:
    """ZerO's matrix on the (out, in) plane of the kernel's center, zeros elsewhere (deterministic)."""
    del seed, name  # ZerO uses no randomness
    shape = tuple(tensor.shape)
    fill_from_function(tensor, functools.partial(_zero_values, shape=shape, hadamard_scale=hadamard_scale))


def zero(
    model: nn.Module,
    *,
    preset: str = "auto",
    branch_depth: int = 2,
    hadamard_scale: str = "paper",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """ZerO initialization (Zhao et al. 2021, "ZerO Initialization: Initializing Neural Networks with only Zeros and Ones").

    Deterministic: every ``Linear`` and convolution weight gets
    :func:`zero_matrix` (identity, partial identity, or a scaled Hadamard
    transform where the layer expands; on a convolution, at the kernel's
    center), except that the last layer of each residual branch and the
    classifier start at zero, as the paper does for ResNets; biases zero.

    .. math:: W = I,\\ I^*\\ \\text{or}\\ c\\, I^* H_m I^*, \\qquad W_{branch, last} = 0

    Parameters
    ----------
    model:
        The model.
    preset:
        ``"auto"``, ``"residual_mlp"``, ``"resnet"`` (torchvision names) or
        ``"mlp"`` (no residual branches: every layer gets Algorithm 1), or a :class:`Preset`.
    branch_depth:
        Leading name components that identify a branch (as in :func:`fixup`).
    hadamard_scale:
        ``"paper"`` (``c = 2^{-(m-1)/2}``) or ``"orthonormal"`` (``2^{-m/2}``).
    roles, zero, classifier:
        fnmatch patterns replacing the preset's, as ``roles={"zero": ...}`` or
        ``zero=...``: residual-branch weights (the last of each branch is
        zeroed) and the classifier's parameters (zeroed).
    rules:
        :func:`berry.torch.init_model` rules for other parameters.

    There is no seed: ZerO uses no randomness.

    >>> from berry.torch.models import ResidualMLP
    >>> model = ResidualMLP(in_features=4, width=8, depth=2, out_features=3)
    >>> report = zero(model)
    >>> model.blocks[0].layers[0].weight.diagonal().tolist() == [1.0] * 8, float(model.blocks[0].layers[1].weight.detach().abs().max())
    (True, 0.0)
    """
    branch_depth = check_int("branch_depth", branch_depth, minimum=1)
    hadamard_scale = check_choice("hadamard_scale", hadamard_scale, ("paper", "orthonormal"))
    parameters = ModelParameters(model)
    found = ZERO_ROLES.resolve(parameters, preset, ZERO_ROLES.overrides(roles, patterns))
    branches = branches_of(found.of("zero"), branch_depth)
    role_of = {layers[-1]: "branch last" for layers in branches.values()}
    role_of.update({name: "classifier" for name in found.of("classifier")})
    scheme_rules: SchemeRules = [(exact(name), "zeros") for name in role_of]
    fill = functools.partial(_zero_fill, hadamard_scale=hadamard_scale)
    for entry in parameters:
        if entry.name in role_of or not isinstance(entry.module, (nn.Linear, nn.modules.conv._ConvNd)):
            continue
        if entry.local_name == "weight":
            scheme_rules.append((exact(entry.name), fill))
            role_of[entry.name] = "zero_matrix"
        elif entry.local_name == "bias":
            scheme_rules.append((exact(entry.name), "zeros"))
            role_of[entry.name] = "bias"
    report = apply_rules(model, scheme_rules, rules, 0)
    return SchemeReport("zero", found.preset, {"n_branches": float(len(branches))}, role_of, report)

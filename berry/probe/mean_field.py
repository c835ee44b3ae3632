"""The mean-field theory of signal propagation: the variance map a deep network's layers iterate.

With ``sigma_w^2 = fan_in * std^2`` (Poole et al. 2016, "Exponential
expressivity in deep neural networks through transient chaos"; Schoenholz et
al. 2017, "Deep Information Propagation"):

.. math::

    q_l = \\sigma_w^2\\, p_{l-1}, \\qquad
    p_l = \\mathbb{E}_{z\\sim N(0,1)}\\big[f(\\sqrt{q_l}\\, z)^2\\big]

where ``q_l`` is the variance of layer ``l``'s output (its pre-activations)
and ``p`` the activations' second moment (``p_0`` the input's). Backward,
with ``sigma_o^2 = fan_out * std^2``, under the gradient-independence
assumption (Schoenholz et al. 2017), the gradients' variance
``r_l = E[(dL/dh_l)^2]`` follows ``r_L = E[f'^2]_L`` and

.. math::

    r_{l-1} = \\sigma_o^2\\, \\mathbb{E}\\big[f'(\\sqrt{q_{l-1}}\\, z)^2\\big]\\, r_l .

For pre-activation residual blocks ``h_l = h_{l-1} + alpha f(h_{l-1}) W_l``
the stream's variance and its gradient's follow

.. math::

    q_l = q_{l-1} + \\alpha^2 \\sigma_w^2\\, \\mathbb{E}\\big[f(\\sqrt{q_{l-1}}\\, z)^2\\big], \\qquad
    r_{l-1} = r_l \\big(1 + \\alpha^2 \\sigma_o^2\\, \\mathbb{E}\\big[f'(\\sqrt{q_{l-1}}\\, z)^2\\big]\\big),

with ``q_0`` the input's second moment and ``r_L = 1``: without a branch
scale ReLU's stream doubles its variance at every block; with
``alpha = 1/sqrt(depth)`` it grows by at most ``e`` (Hanin & Rolnick 2018,
"How to Start Training: The Effect of Initialization and Architecture").

The expectations come from :func:`berry._gaussian.gaussian_expectation`, the
quadrature :func:`berry.gain` uses too (exact to about 1e-14, cut at the
activation's kinks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from berry._gaussian import gaussian_expectation
from berry._validation import check_positive

__all__ = ["MeanField", "mean_field"]


@dataclass(frozen=True)
class MeanField:
    """Mean-field predictions per layer (arrays of length ``depth``).

    ``output_var``: ``q_l``, the variance of each layer's output (its
    pre-activations; the stream for residual blocks); ``act_mean``,
    ``act_second_moment``: the layer's activations ``f`` (for a residual
    block, of the stream entering it); ``grad_var``: ``E[(dL/dh_l)^2]``.
    """

    output_var: np.ndarray
    act_mean: np.ndarray
    act_second_moment: np.ndarray
    grad_var: np.ndarray


def _moments(activation: Any, variance: float) -> tuple[float, float, float]:
    """E[f], E[f^2] and E[f'^2] at a pre-activation N(0, variance), in one quadrature."""
    if variance == math.inf:  # the theory's variance overflowed: so does the second moment
        return math.nan, math.inf, math.nan

    def stacked(x: np.ndarray) -> np.ndarray:
        values = activation.fn(x)
        slopes = activation.derivative(x)
        return np.stack([values, values * values, slopes * slopes])

    mean, second, slope_square = gaussian_expectation(
        stacked, activation.kinks, variance=variance, what=f"the mean field of activation {activation.name!r}",
        finite=False,  # a network whose variance overflowed: the theory says inf too
    )
    return float(mean), float(second), float(slope_square)


def mean_field(
    activation: Any,
    sigma_w2_in: Sequence[float],
    sigma_w2_out: Sequence[float] | None = None,
    *,
    residual: bool = False,
    branch_scale: float = 1.0,
    input_second_moment: float = 1.0,
) -> MeanField:
    """Iterate the mean-field variance map through a deep network.

    Poole et al. 2016 ("Exponential expressivity in deep neural networks
    through transient chaos") and Schoenholz et al. 2017 ("Deep Information
    Propagation"); see the module documentation for the residual and backward
    terms.

    .. math::

        q_l = \\sigma_{w,l}^2\\, \\mathbb{E}_{z \\sim N(0,1)}\\big[f(\\sqrt{q_{l-1}}\\, z)^2\\big]

    Parameters
    ----------
    activation:
        A name or callable for :func:`berry.get_activation`, or an ``Activation``.
    sigma_w2_in, sigma_w2_out:
        Per layer, ``fan_in * std^2`` and ``fan_out * std^2`` of the weights
        (``sigma_w2_out`` defaults to ``sigma_w2_in``: square layers).
    residual, branch_scale:
        Pre-activation residual blocks ``h_l = h_{l-1} + branch_scale * f(h_{l-1}) W_l``
        instead of ``h_l = f(h_{l-1}) W_l``.
    input_second_moment:
        ``E[x_0^2]`` of the input.

    Examples
    --------
    >>> mf = mean_field("relu", [2.0] * 3)        # He: q stays at 2
    >>> [round(float(v), 12) for v in mf.output_var]
    [2.0, 2.0, 2.0]
    >>> round(float(mean_field("tanh", [1.0] * 50).output_var[-1]), 4)    # Xavier: q ~ 1/(2l)
    0.0104
    """
    from berry.activations import get_activation

    act = get_activation(activation)
    inward = [check_positive(f"sigma_w2_in[{i}]", v, allow_zero=True) for i, v in enumerate(sigma_w2_in)]
    outward = inward if sigma_w2_out is None else [float(v) for v in sigma_w2_out]
    if len(outward) != len(inward):
        raise ValueError(f"sigma_w2_out has {len(outward)} layers, sigma_w2_in {len(inward)}; they must match")
    alpha = float(branch_scale) if residual else 1.0
    depth = len(inward)
    # A variance that overflows float64 is the prediction itself (the signal explodes): inf, without NumPy's
    # RuntimeWarning about the scalar product that made it.
    with np.errstate(over="ignore"):
        q, m, p, slope_square = (np.empty(depth) for _ in range(4))
        if residual:
            # The stream: h_l = h_{l-1} + alpha f(h_{l-1}) W_l. Its mean stays 0: every branch ends in a weight.
            stream = float(input_second_moment)
            for layer in range(depth):
                m[layer], p[layer], slope_square[layer] = _moments(act, stream)
                stream = stream + alpha * alpha * inward[layer] * p[layer]
                q[layer] = stream
        else:
            second = float(input_second_moment)
            for layer in range(depth):
                q[layer] = inward[layer] * second
                m[layer], p[layer], slope_square[layer] = _moments(act, float(q[layer]))
                second = p[layer]
        grad_var = np.empty(depth)
        if residual:
            incoming = 1.0  # E[(dL/dh_L)^2]
            for layer in reversed(range(depth)):
                grad_var[layer] = incoming
                incoming *= 1.0 + alpha * alpha * outward[layer] * slope_square[layer]
        else:
            incoming = 1.0  # E[(dL/dx_L)^2]
            for layer in reversed(range(depth)):
                grad_var[layer] = slope_square[layer] * incoming
                incoming = outward[layer] * grad_var[layer]
    return MeanField(q, m, p, grad_var)

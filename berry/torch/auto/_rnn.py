"""Mean field of recurrent modules (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``), step by step through time.

Each gate's pre-activation is ``a = W_ih x_t + W_hh h_{t-1}`` (biases zero).
With ``W_hh`` orthogonal per gate (gain ``g``, Saxe et al. 2014), ``W_hh h``
has exactly ``g^2 q_h`` second moment, so

.. math:: q_a(t) = n_{in} \\sigma_{ih}^2 q_x + g^2 q_h(t-1),

and for an LSTM, with independent gates (Gaussian pre-activations),

.. math::

    q_c(t) = \\mathbb{E}[\\sigma^2]\\, q_c(t-1) + \\mathbb{E}[\\sigma^2]\\,\\mathbb{E}[\\tanh^2],
    \\qquad q_h(t) = \\mathbb{E}[\\sigma^2]\\, \\mathbb{E}[\\tanh^2(c_t)],

(GRU and the plain RNN likewise). ``sigma_ih`` is chosen so that the gates'
pre-activations have unit second moment averaged over the sequence (a fixed
point: ``q_h`` depends on it). The backward pass runs the same recursions
backwards in time (back-propagation through time under the
gradient-independence assumption of Schoenholz et al. 2017).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from berry.activations import get_activation
from berry.gains import gaussian_expectation
from berry.torch.auto._record import Node, canonical_name
from berry.torch.auto._stat import Stat

if TYPE_CHECKING:
    from berry.torch.auto._propagate import Forward

__all__ = ["module_part", "recurrent", "recurrent_backward"]


@functools.lru_cache(maxsize=8192)
def _moments(name: str, var: float) -> tuple[float, float, float]:
    """(E f, E f^2, E f'^2) at N(0, var)."""
    activation = get_activation(name)
    sd = math.sqrt(max(var, 0.0))
    if sd == 0.0:
        value = float(activation.fn(np.zeros(1))[0])
        slope = float(activation.derivative(np.zeros(1))[0])
        return value, value * value, slope * slope
    mean = gaussian_expectation(lambda z: activation.fn(sd * z), activation.kinks)
    second = gaussian_expectation(lambda z: activation.fn(sd * z) ** 2, activation.kinks)
    slope = gaussian_expectation(lambda z: activation.derivative(sd * z) ** 2, activation.kinks)
    return mean, second, slope


def _at(name: str, var: float) -> tuple[float, float, float]:
    return _moments(name, float(f"{var:.6g}"))


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.LSTM):
        return None if getattr(module, "proj_size", 0) else "LSTM"
    if isinstance(module, nn.GRU):
        return "GRU"
    if isinstance(module, nn.RNN):
        return "RNN_RELU" if module.nonlinearity == "relu" else "RNN_TANH"
    return None


def _layer(kind: str, q_in: float, sigma2_in: float, n_in: int, gain: float, steps: int) -> dict[str, Any]:
    """Per-step moments of one layer and direction, forward in time from h_0 = c_0 = 0."""
    g2 = gain * gain
    drive = n_in * sigma2_in * q_in
    q_h, q_c = 0.0, 0.0
    record: dict[str, list[float]] = {k: [] for k in ("qa", "qh_prev", "qc_prev", "qh", "qc", "mh", "qn")}
    for _ in range(steps):
        qa = drive + g2 * q_h
        record["qa"].append(qa)
        record["qh_prev"].append(q_h)
        record["qc_prev"].append(q_c)
        if kind == "LSTM":
            _, s2, _ = _at("sigmoid", qa)
            _, t2, _ = _at("tanh", qa)
            q_c = s2 * q_c + s2 * t2
            _, tc2, _ = _at("tanh", q_c)
            q_h, m_h = s2 * tc2, 0.0
        elif kind == "GRU":
            s1, s2, _ = _at("sigmoid", qa)
            qn = drive + s2 * g2 * q_h
            record["qn"].append(qn)
            _, t2, _ = _at("tanh", qn)
            q_h, m_h = (1.0 - 2.0 * s1 + s2) * t2 + s2 * q_h, 0.0
        else:
            name = "relu" if kind == "RNN_RELU" else "tanh"
            m_h, q_h, _ = _at(name, qa)
        record["qh"].append(q_h)
        record["qc"].append(q_c)
        record["mh"].append(m_h)
    return {k: np.asarray(v) for k, v in record.items()}


def recurrent(forward: Forward, index: int) -> Stat:
    """Choose the input and recurrent weights of a recurrent module and propagate its moments."""

    node = forward.graph.nodes[index]
    module = node.nested
    kind = _kind(module) if isinstance(module, nn.Module) else None
    data = forward.structure.data_inputs(index)
    if kind is None or not data:
        forward.structure.unknown[index] = f"{type(module).__name__} (projections or an unknown cell) not modelled"
        return forward._on_unknown(index)
    assert isinstance(module, nn.RNNBase)
    x = forward._as_data(data[0], forward.stat(data[0]))
    shape = forward.graph.nodes[data[0]].shape
    steps = int(shape[1] if module.batch_first and len(shape) == 3 else shape[0])
    directions = 2 if module.bidirectional else 1
    gain = forward.policy.options.recurrent_gain
    target = forward.policy.options.target
    q_in = x.q
    layers: list[dict[str, Any]] = []
    for layer in range(module.num_layers):
        n_in = module.input_size if layer == 0 else module.hidden_size * directions
        q_prev = 0.0
        sigma2 = target / (n_in * q_in)
        record: dict[str, Any] = {}
        for _ in range(8):  # fixed point: the recurrent share of the gates' second moment depends on sigma_ih
            sigma2 = max(target - gain * gain * q_prev, 0.2 * target) / max(n_in * q_in, 1e-300)
            record = _layer(kind, q_in, sigma2, n_in, gain, steps)
            new_prev = float(record["qh_prev"].mean())
            if abs(new_prev - q_prev) <= 1e-9 * max(q_prev, 1e-12):
                break
            q_prev = new_prev
        record.update(sigma2=sigma2, n_in=n_in, q_in=q_in)
        layers.append(record)
        for suffix in [""] + (["_reverse"] if directions == 2 else []):
            prefix = node.module
            name_ih = canonical_name([*prefix.split("."), f"weight_ih_l{layer}{suffix}"])
            name_hh = canonical_name([*prefix.split("."), f"weight_hh_l{layer}{suffix}"])
            sigma = math.sqrt(sigma2)
            forward.policy.record(name_ih, forward.policy._spec(sigma), sigma, "recurrent input",
                                     f"{kind} input weights: gates' pre-activations at unit second moment over "
                                     f"{steps} steps (recurrent share {gain**2 * q_prev:.3g})", index)
            forward.policy.record(name_hh, {"init": "orthogonal", "gain": gain}, None, "recurrent",
                                     f"{kind} recurrent weights: orthogonal per gate, gain {gain:g}", index)
            if module.bias:
                for bias in ("bias_ih", "bias_hh"):
                    name = canonical_name([*prefix.split("."), f"{bias}_l{layer}{suffix}"])
                    forward.policy.record(name, "zeros", 0.0, "bias", "bias: zeros", index)
        q_in = float(record["qh"].mean())
    forward.scales[index] = {"layers": layers, "kind": kind, "directions": directions,  # type: ignore[dict-item]
                             "hidden": module.hidden_size, "gain": gain}
    last = layers[-1]
    return Stat("data", q=float(last["qh"].mean()), m=float(last["mh"].mean()), s=0.0, gauss=False,
                axes=x.axes, fresh=forward.structure.fresh(index) if kind != "RNN_RELU" else 0)


def module_part(forward: Forward, parent: int, node: Node) -> Stat:
    """Items of a recurrent module's result: the output sequence, then h_n (and c_n)."""

    whole = forward.stat(parent)
    scales: Any = forward.scales.get(parent)
    if node.part == 0 or not scales:
        return Stat("data", q=whole.q, m=whole.m, s=0.0, gauss=False,
                    axes=("P",) * (len(node.shape) - 1) + ("F",), fresh=whole.fresh)
    layers = scales["layers"]
    key = "qh" if node.part == 1 else "qc"
    q = float(np.mean([layer[key][-1] for layer in layers]))
    return Stat("data", q=q, m=0.0, s=0.0, gauss=False, axes=("P",) * (len(node.shape) - 1) + ("F",))


def recurrent_backward(forward: Forward, index: int, r_out: float) -> float:
    """Gradient second moment at the module's input for ``r_out`` at every output element (BPTT mean field)."""
    scales: Any = forward.scales.get(index)
    if not scales:
        return r_out
    kind, hidden, gain, directions = scales["kind"], scales["hidden"], scales["gain"], scales["directions"]
    g2 = gain * gain
    r_y = r_out
    for layer in reversed(scales["layers"]):
        steps = len(layer["qa"])
        r_rec, r_c_next, f2_next = 0.0, 0.0, 0.0
        r_x = 0.0
        for t in reversed(range(steps)):
            qa = float(layer["qa"][t])
            s1, s2, ds2 = _at("sigmoid", qa)
            _, t2, dt2 = _at("tanh", qa)
            r_h = r_y + r_rec
            if kind == "LSTM":
                _, tc2, dtc2 = _at("tanh", float(layer["qc"][t]))
                r_c = r_h * s2 * dtc2 + r_c_next * f2_next
                gates = r_h * tc2 * ds2 + r_c * t2 * ds2 + r_c * s2 * dt2 + r_c * float(layer["qc_prev"][t]) * ds2
                r_c_next, f2_next = r_c, s2
                r_rec = g2 * gates
            elif kind == "GRU":
                qn = float(layer["qn"][t])
                _, n2, dn2 = _at("tanh", qn)
                q_prev = float(layer["qh_prev"][t])
                r_an = r_h * (1.0 - 2.0 * s1 + s2) * dn2
                r_az = r_h * (n2 + q_prev) * ds2
                r_ar = r_an * g2 * q_prev * ds2
                gates = r_an + r_az + r_ar
                r_rec = r_h * s2 + g2 * (r_az + r_ar + r_an * s2)
            else:
                _, _, d2 = _at("relu" if kind == "RNN_RELU" else "tanh", qa)
                gates = r_h * d2
                r_rec = g2 * gates
            r_x += hidden * layer["sigma2"] * gates
        r_y = directions * r_x / max(steps, 1)
    return r_y

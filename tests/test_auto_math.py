"""The expectations behind auto_init, against closed forms and fixed-seed Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from berry.activations import get_activation  # noqa: E402
from berry.gains import second_moment  # noqa: E402
from berry.torch.auto import auto_init  # noqa: E402
from berry.torch.auto._chain import chain_moments  # noqa: E402
from berry.torch.auto._propagate import Forward  # noqa: E402
from berry.torch.auto._softmax import expected_max_moments, softmax_sum_squares  # noqa: E402


def _composite(activation):
    """The recorded chain of ``activation`` applied to a linear layer's output."""
    from berry.torch.auto._plan import _converge
    from berry.torch.auto._policy import Options, Policy
    from berry.torch.auto._record import record
    from berry.torch.auto._structure import analyze

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)

        def forward(self, x):
            return activation(self.linear(x))

    graph = record(Model(), [torch.empty(2, 4, device="meta")])
    structure = analyze(graph)
    top = graph.outputs[0]
    forward: Forward = _converge(structure, Policy(structure, Options(), {0: _data()}))
    return forward.composite(top, structure.leaf[top])


def _data():
    from berry.torch.auto._propagate import Stat

    return Stat("data", q=1.0, axes=("P", "F"))


@pytest.mark.parametrize("name", ["relu", "tanh", "gelu", "silu", "elu", "softplus"])
def test_chain_moments_equal_berry_gains(name):
    composite = _composite(getattr(torch.nn.functional, name))
    moments = chain_moments(composite, 0.0, 1.0, 0.0)
    assert moments.q == pytest.approx(second_moment(name), rel=1e-12)
    assert moments.d2 == pytest.approx(second_moment(name, mode="backward"), rel=1e-9)


def test_chain_moments_at_a_shifted_scaled_leaf():
    composite = _composite(torch.relu)
    mean, var = 0.3, 2.5
    moments = chain_moments(composite, mean, var, 0.0)
    sd = math.sqrt(var)
    a = mean / sd  # the closed forms of E[relu(x)], E[relu(x)^2] with the standard library's erf (independent of berry)
    phi, cdf = math.exp(-a * a / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(a / math.sqrt(2)))
    assert moments.m == pytest.approx(mean * cdf + sd * phi, rel=1e-12)
    assert moments.q == pytest.approx((mean**2 + var) * cdf + mean * sd * phi, rel=1e-12)
    assert moments.d2 == pytest.approx(cdf, rel=1e-12)


@pytest.mark.parametrize("c", [0.1, 0.5, 0.9])
def test_pair_moment_of_relu_is_the_arc_cosine_kernel(c):
    """E[relu(u) relu(v)] for unit Gaussians of correlation c: (sqrt(1-c^2) + (pi - arccos c) c) / (2 pi)."""
    moments = chain_moments(_composite(torch.relu), 0.0, 1.0, c)
    expected = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / (2 * math.pi)  # Cho & Saul 2009
    assert moments.s == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("n", "var"), [(2, 0.5), (7, 1.0), (32, 2.0), (200, 1.0)])
def test_softmax_sum_of_squares_against_monte_carlo(n, var):
    rng = np.random.default_rng(1)
    draws = rng.normal(0.0, math.sqrt(var), size=(40_000, n))
    p = np.exp(draws - draws.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    values = (p * p).sum(axis=1)
    error = values.std() / math.sqrt(values.size)
    assert abs(softmax_sum_squares([n], var) - values.mean()) < 5 * error


def test_softmax_limits_and_causal_average():
    assert softmax_sum_squares([1], 3.0) == pytest.approx(1.0, abs=1e-12)
    assert softmax_sum_squares([16], 0.0) == pytest.approx(1 / 16, abs=1e-15)
    rows = list(range(1, 9))
    assert softmax_sum_squares(rows, 1.0) == pytest.approx(np.mean([softmax_sum_squares([k], 1.0) for k in rows]))


@pytest.mark.parametrize(("n", "cov"), [(4, 0.0), (9, 0.3)])
def test_expected_max_against_monte_carlo(n, cov):
    rng = np.random.default_rng(2)
    shared = rng.normal(0.0, math.sqrt(cov), size=(200_000, 1))
    draws = 0.5 + shared + rng.normal(0.0, math.sqrt(1.0 - cov), size=(200_000, n))
    relu = get_activation("relu")
    first, second = expected_max_moments(n, 0.5, 1.0, cov, relu.fn)
    maxima = np.maximum(draws.max(axis=1), 0.0)
    assert first == pytest.approx(maxima.mean(), abs=5 * maxima.std() / math.sqrt(maxima.size))
    assert second == pytest.approx((maxima**2).mean(), rel=0.01)


@pytest.mark.parametrize(("cell", "layers", "tolerance"), [
    (nn.LSTM, 1, 0.05), (nn.GRU, 1, 0.05), (nn.RNN, 1, 0.05),
    # a second layer reads inputs correlated across time steps, which the mean field takes as independent
    (nn.LSTM, 2, 0.25), (nn.GRU, 2, 0.25), (nn.RNN, 2, 0.05),
])
def test_recurrent_mean_field_predicts_the_output(cell, layers, tolerance):
    torch.manual_seed(0)

    class Sequence(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = cell(64, 128, num_layers=layers, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    model = Sequence()
    x = torch.randn(64, 24, 64, generator=torch.Generator().manual_seed(0))
    report = auto_init(model, x, measure=False)
    with torch.no_grad():
        measured = float(model(x).std())
    assert measured == pytest.approx(report["rnn.weight_ih_l0"].predicted_std, rel=tolerance)
    assert report.rules[f"rnn.weight_hh_l{layers - 1}"] == {"init": "orthogonal", "gain": 1.0}

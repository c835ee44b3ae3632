"""berry.torch.probe on real modules, and berry.probe's NumPy backprop checked against torch autograd."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from berry import probe as numpy_probe  # noqa: E402
from berry.probe import ProbeReport  # noqa: E402
from berry.sampling import sample  # noqa: E402
from berry.torch._probe import probe  # noqa: E402


def _mlp(depth: int, width: int, scale: float, *, inplace: bool = False) -> torch.nn.Sequential:
    """A ReLU MLP whose weights have std scale * sqrt(2 / width) (He times scale), zero biases."""
    layers: list[torch.nn.Module] = []
    for index in range(depth):
        linear = torch.nn.Linear(width, width)
        values = sample((width, width), "he", seed=0, name=f"{index}.weight", layout="torch", gain=scale)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(values))
            linear.bias.zero_()
        layers += [linear, torch.nn.ReLU(inplace=inplace)]
    return torch.nn.Sequential(*layers)


def _batch(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(sample(shape, "lecun", std=1.0, seed=1, name="batch"))


def test_verdicts_of_a_small_model_follow_the_scale():
    batch = _batch((32, 64))
    assert probe(_mlp(16, 64, 1.0), batch).networks[0].verdict.kind == "stable"
    small = probe(_mlp(16, 64, 0.5), batch).networks[0].verdict
    assert (small.kind, small.direction) == ("vanishing", "forward")
    large = probe(_mlp(16, 64, 2.0), batch).networks[0].verdict
    assert (large.kind, large.direction) == ("exploding", "forward")


def test_rows_follow_the_call_order_with_names_kinds_and_weights():
    model = _mlp(3, 16, 1.0)
    report = probe(model, _batch((8, 16)))
    assert isinstance(report, ProbeReport)
    (network,) = report.networks
    assert network.label == "Sequential"
    assert [s.name for s in network.layers] == ["0", "1", "2", "3", "4", "5"]
    assert [s.kind for s in network.layers] == ["Linear", "ReLU"] * 3
    assert all(s.weight_grad_std is not None for s in network.layers[::2])
    assert all(s.weight_grad_std is None for s in network.layers[1::2])
    assert all(s.grad_std is not None and s.grad_std > 0 for s in network.layers)
    assert report.config["modules_judged"] == ["0", "2", "4"]
    json.dumps(report.to_dict(), allow_nan=False)
    assert "0 (Linear)" in report.table()


def test_statistics_match_a_direct_computation():
    model = _mlp(2, 16, 1.0)
    batch = _batch((8, 16))
    report = probe(model, batch, loss=lambda out: out.pow(2).sum() / 2)
    hidden = model[0](batch).detach()
    layers = report.networks[0].layers
    assert layers[0].output_std == pytest.approx(float(hidden.double().std(unbiased=False)), rel=1e-6)
    output = model(batch).detach()
    # L = |y|^2 / 2: dL/dy = y
    assert report.networks[0].output_grad_std == pytest.approx(float(output.double().std(unbiased=False)), rel=1e-6)
    dead = float(((model[1](model[0](batch)) != 0).sum(0) == 0).double().mean())
    assert layers[1].dead_fraction == pytest.approx(dead)


def test_grads_and_parameters_are_left_as_they_were():
    model = _mlp(2, 8, 1.0)
    before = [p.detach().clone() for p in model.parameters()]
    sentinel = torch.full_like(model[0].weight, 7.0)
    model[0].weight.grad = sentinel.clone()
    probe(model, _batch((4, 8)))
    assert torch.equal(model[0].weight.grad, sentinel)
    assert model[2].weight.grad is None
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_inplace_relu_conv_models_tuple_outputs_and_shared_modules():
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.act = torch.nn.ReLU(inplace=True)  # overwrites the conv's output after its hook ran
            self.shared = torch.nn.Tanh()
            self.head = torch.nn.Linear(8 * 6 * 6, 4)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.shared(self.shared(self.act(self.conv(x))))  # the same module twice: two rows
            return self.head(features.flatten(1)), features

    report = probe(Net(), _batch((2, 3, 6, 6)))
    names = [s.name for s in report.networks[0].layers]
    assert names == ["conv", "act", "shared", "shared#2", "head"]
    conv = report.networks[0].layers[0]
    assert conv.output_std > 0 and conv.grad_std is not None


def test_mapping_batches_and_integer_inputs():
    class Embedder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(10, 6)
            self.out = torch.nn.Linear(6, 6)

        def forward(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": self.out(self.embed(ids))}

    report = probe(Embedder(), {"ids": torch.arange(10).reshape(2, 5)})
    network = report.networks[0]
    assert network.input_std == pytest.approx(network.layers[0].output_std)  # integer input: first layer's
    assert network.verdict.kind in ("stable", "vanishing", "exploding")


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        probe(lambda x: x, torch.zeros(2))
    with pytest.raises(TypeError, match="scalar"):
        probe(torch.nn.Linear(2, 2), torch.zeros(3, 2), loss=lambda out: out)


def test_exposed_as_berry_torch_probe():
    import berry.torch

    assert berry.torch.probe is probe


# --- the NumPy probe's backpropagation against torch autograd --------------------------------------


@pytest.mark.parametrize(("arch", "residual"), [("mlp", False), ("mlp", True), ("conv", False)])
def test_numpy_backprop_matches_torch_autograd(arch, residual):
    depth, width, batch, seed = 4, 6, 3, 5
    report = numpy_probe.run("he", depth=depth, width=width, batch_size=batch, activation="tanh", arch=arch,
                             residual=residual, branch_scale=0.5 if residual else None, image_size=4,
                             seed=seed, dtype="float64")
    network = report["he"]
    shape = (batch, width) if arch == "mlp" else (batch, 4, 4, width)
    x = torch.from_numpy(sample(shape, "lecun", std=1.0, seed=seed, name="probe.input", dtype="float64"))
    direction = torch.from_numpy(sample(shape, "lecun", std=1.0, seed=seed, name="probe.output_grad",
                                        dtype="float64"))
    weight_shape = (width, width) if arch == "mlp" else (3, 3, width, width)
    weights = [
        torch.from_numpy(sample(weight_shape, "he", seed=seed, name=f"layer{i}.weight", dtype="float64"))
        .requires_grad_(True)
        for i in range(1, depth + 1)
    ]

    def apply(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if arch == "mlp":
            return h @ weight
        nchw = torch.nn.functional.pad(h.permute(0, 3, 1, 2), (1, 1, 1, 1), mode="circular")
        return torch.nn.functional.conv2d(nchw, weight.permute(3, 2, 0, 1)).permute(0, 2, 3, 1)

    preacts = []
    stream = x
    for weight in weights:
        if residual:
            stream = stream + 0.5 * apply(torch.tanh(stream), weight)
            preact = stream
        else:
            preact = apply(stream, weight)
            stream = torch.tanh(preact)
        preact.retain_grad()
        preacts.append(preact)
    (stream * direction).sum().backward()

    for stats, preact, weight in zip(network.layers, preacts, weights, strict=True):
        assert stats.output_std == pytest.approx(float(preact.detach().std(unbiased=False)), rel=1e-10)
        assert stats.grad_std == pytest.approx(float(preact.grad.std(unbiased=False)), rel=1e-10)
        assert stats.weight_grad_std == pytest.approx(float(weight.grad.std(unbiased=False)), rel=1e-10)
    assert math.isfinite(network.layers[0].mean_field_std)
    assert np.isfinite(network.series("grad_std")).all()

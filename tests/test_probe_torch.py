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
    # the last Linear is the head: shown, not judged; ReLUs carry no weight
    assert [s.role for s in network.layers] == ["layer", "other", "layer", "other", "head", "other"]
    assert report.config["modules_judged"] == ["0", "2"]
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
    assert network.input_std == pytest.approx(network.layers[0].output_std)  # integer input: the embedding's
    assert [s.role for s in network.layers] == ["embedding", "head"]
    # nothing between the embedding and the head carries the signal: nothing judged, and the report says so
    assert str(network.verdict) == "stable" and network.forward.reference == "no judged rows"


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


# --- verdicts a user can trust: streams, roles and trends on the zoo of berry.torch.auto ---------------------------

from berry.probe.report import LayerStats  # noqa: E402
from berry.probe.streams import judge_streams, judge_trend  # noqa: E402
from berry.torch.auto import auto_init, zoo  # noqa: E402


def _zoo(name: str, *, auto: bool) -> tuple[torch.nn.Module, tuple]:
    model, inputs = zoo.build(name, seed=0)
    if auto:
        auto_init(model, *inputs, seed=0, measure=False)
    return model.eval(), inputs


@pytest.mark.parametrize("name", sorted(zoo.ZOO))
def test_every_zoo_model_initialized_by_auto_init_reads_stable(name):
    model, inputs = _zoo(name, auto=True)
    network = probe(model, inputs).networks[0]
    assert (str(network.forward), str(network.backward)) == ("stable", "stable")
    assert any(s.judged for s in network.layers)  # stable because something was judged, not because nothing was


def _linear_ratios(model: torch.nn.Module, inputs: tuple) -> list[tuple[str, float, float]]:
    """Each Linear's name, output std over the input's, and output gradient std over the last hidden Linear's.

    Measured with plain hooks and autograd (not the probe), for the loss sum(output * r), r standard normal.
    """
    outputs: list[tuple[str, torch.Tensor]] = []
    names = {module: name for name, module in model.named_modules()}

    def keep(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        output.retain_grad()
        outputs.append((names[module], output))

    hooks = [module.register_forward_hook(keep) for module in model.modules() if isinstance(module, torch.nn.Linear)]
    result = model(*inputs)
    (result * torch.randn(result.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    for hook in hooks:
        hook.remove()
    model.zero_grad(set_to_none=True)
    start = float(inputs[0].double().std())
    top = float(outputs[-2][1].grad.double().std())  # the last Linear is the head: the stack ends before it
    return [(name, float(out.detach().double().std()) / start, float(out.grad.double().std()) / top)
            for name, out in outputs]


@pytest.mark.parametrize("init", [
    "xavier",  # Glorot's 1/fan on ReLU: the variance halves per layer
    "half_he",  # He's std x 0.5: the variance falls 4x per layer
])
def test_a_badly_initialized_mlp_names_the_first_layer_that_breaks(init):
    model, inputs = _zoo("mlp_relu", auto=False)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                if init == "xavier":
                    torch.nn.init.xavier_normal_(module.weight)
                else:
                    torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    module.weight.mul_(0.5)
                module.bias.zero_()
    hidden = _linear_ratios(model, inputs)[:-1]  # the last Linear is the head
    first = next(index for index, (_, ratio, _) in enumerate(hidden) if ratio < 1 / 10)
    assert all(ratio < 1 / 10 for _, ratio, _ in hidden[first:])  # it leaves and stays out: a true break
    assert first >= 2
    # backward, read from the top: the gradient decays layer after layer too
    last = max(index for index, (_, _, grad) in enumerate(hidden) if grad < 1 / 10)
    assert all(grad < 1 / 10 for _, _, grad in hidden[:last + 1]) and last < len(hidden) - 3
    network = probe(model, inputs).networks[0]
    assert (network.forward.kind, network.forward.direction, network.forward.name) == (
        "vanishing", "forward", hidden[first][0])
    assert (network.backward.kind, network.backward.name) == ("vanishing", hidden[last][0])


@pytest.mark.parametrize(("name", "blocks"), [
    ("gpt", lambda model: model.transformer["h"]),
    ("transformer_pre_ln", lambda model: model[1].layers),
    ("residual_mlp", lambda model: model.blocks),
])
def test_a_transformer_with_one_block_30x_too_large_names_that_block(name, blocks):
    model, inputs = _zoo(name, auto=True)
    broken = 2
    with torch.no_grad():
        for parameter in blocks(model)[broken].parameters():
            if parameter.dim() >= 2:
                parameter.mul_(30)
    # Independent measurement with plain hooks and autograd: the std of the residual stream after each block and of
    # its gradient. GPT's and the encoder's blocks return the stream; the residual MLP's block is the branch, so
    # there the stream is what the next block (or the head) reads.
    entering: list[torch.Tensor] = []
    leaving: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        for tensor, where in ((args[0], entering), (output, leaving)):
            if tensor.requires_grad:
                tensor.retain_grad()
            where.append(tensor)

    watched = list(blocks(model)) + ([model.head] if name == "residual_mlp" else [])
    hooks = [module.register_forward_hook(keep) for module in watched]
    output = model(*inputs)
    direction = torch.randn(output.shape, generator=torch.Generator().manual_seed(1))
    (output * direction).sum().backward()
    for hook in hooks:
        hook.remove()
    model.zero_grad(set_to_none=True)
    stream = entering[1:] if name == "residual_mlp" else leaving

    def std(tensor: torch.Tensor | None) -> float:
        assert tensor is not None
        return float(tensor.detach().double().std())

    forward = [std(t) / std(entering[0]) for t in stream]
    backward = [std(t.grad) / std(stream[-1].grad) for t in stream]
    assert all(ratio < 10 for ratio in forward[:broken]) and all(ratio > 10 for ratio in forward[broken:])
    out = [k for k, ratio in enumerate(backward) if ratio > 10]
    first_backward = max(out)  # read backward, the first stream out of the band: after the block below the broken
    assert out == list(range(first_backward + 1))  # and it stays out down to the first block
    names = [n for n, _ in blocks(model).named_children()]

    def row(index: int) -> str:
        return next(s.name for s in network.layers if s.role == "block" and s.name.endswith(f".{names[index]}"))

    # inside the broken block: the first module whose output is off the same module's in the blocks before it
    leaf_std: dict[str, float] = {}

    def leaf(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        leaf_std.setdefault(f"{index}{leaves[module]}", float(output.detach().double().std()))

    for index in range(broken + 1):  # the same places in the earlier blocks: their modules, keyed alike
        leaves = {module: f".{place}" for place, module in blocks(model)[index].named_modules()
                  if place and not any(True for _ in module.children())}
        hooks = [module.register_forward_hook(leaf) for module in leaves]
        with torch.no_grad():
            model(*inputs)
        for hook in hooks:
            hook.remove()
    off = [place for place in (key.split(".", 1)[1] for key in leaf_std if key.startswith(f"{broken}."))
           if not 0.1 <= leaf_std[f"{broken}.{place}"] / float(np.median(
               [leaf_std[f"{i}.{place}"] for i in range(broken)])) <= 10]

    network = probe(model, inputs).networks[0]
    assert (network.forward.kind, network.forward.name) == ("exploding", row(broken))
    assert network.forward.culprit == f"{row(broken)}.{off[0]}"
    assert "entering" in network.forward.reference
    # backward: the gradient reaching the stream below the broken block explodes, first after the block below it
    assert first_backward == broken - 1
    assert (network.backward.kind, network.backward.name) == ("exploding", row(first_backward))


def test_a_tied_gpt_with_gpt2_init_reads_stable_and_its_rows_have_roles():
    # GPT-2's recipe (Radford et al. 2019): every weight N(0, 0.02), residual projections / sqrt(2 layers). The
    # embedding's std 0.02 is the stream's scale, not a signal that the next layer "explodes".
    torch.manual_seed(0)
    model, inputs = zoo.GPT(layers=12), (torch.randint(0, 1000, (8, 64), generator=torch.Generator().manual_seed(0)),)
    layers = len(model.transformer["h"])
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("c_proj.weight") else 0.02
                torch.nn.init.normal_(parameter, std=std)
            elif name.endswith("bias"):
                parameter.zero_()
    network = probe(model, inputs).networks[0]
    assert (str(network.forward), str(network.backward)) == ("stable", "stable")
    # the traps of judging every module against the first output and the output gradient are there...
    wte = next(s for s in network.layers if s.name == "transformer.wte")
    assert min(s.output_std for s in network.layers if s.role == "norm") > 10 * wte.output_std  # LN: std 1
    assert min(s.grad_std for s in network.layers if s.role == "norm") < network.output_grad_std / 10
    # ...and do not make a verdict: embeddings and norms are shown, not judged
    roles = {s.name: s.role for s in network.layers}
    assert roles["transformer.wte"] == roles["transformer.wpe"] == "embedding"
    assert roles["transformer.h.0.ln_1"] == roles["transformer.ln_f"] == "norm"
    assert roles["lm_head"] == "head"
    assert roles["transformer.h.0.attn.c_attn"] == "branch"
    assert [s.name for s in network.layers if s.judged] == [f"transformer.h.{i}" for i in range(layers)]
    embedding = next(s for s in network.layers if s.name == "transformer.wte")
    assert embedding.output_std == pytest.approx(0.02, rel=0.05)
    block = next(s for s in network.layers if s.name == "transformer.h.0")
    assert block.input_std == pytest.approx(0.02 * math.sqrt(2), rel=0.1)  # token + position embeddings
    text = probe(model, inputs).table()
    assert "judged against: blocks: the stream after each block / the std entering transformer.h.0" in text
    assert "x ref" in text and "pre-act" not in text


def _row(layer: int, role: str, output: float, grad: float, stream: str = "") -> LayerStats:
    return LayerStats(layer=layer, name=f"m{layer}", output_std=output, grad_std=grad, role=role, stream=stream,
                      input_std=1.0)


def test_one_dip_of_one_module_is_not_a_verdict_a_trend_is():
    # A 12-block transformer read backward: a LayerNorm's gradient at 0.088 of the rest is a norm (not judged)...
    rows = []
    for block in range(12):
        rows.append(_row(len(rows) + 1, "norm", 1.0, 0.088 if block == 3 else 1.0))
        rows.append(_row(len(rows) + 1, "block", 1.0, 1.0, "blocks"))
    assert str(judge_streams(rows).backward) == "stable"
    # ...and one judged row dipping once, its neighbours in the band, is no trend either
    dip = [1.0] * 12
    dip[5] = 0.05
    assert judge_trend(dip, layers=list(range(1, 13)), names=[str(i) for i in range(12)], direction="backward",
                       reference="r").kind == "stable"
    # a decay that stays out of the band is, at the first row where it left
    decay = [0.7**i for i in range(12)]  # below 0.1 from i = 7 on
    verdict = judge_trend(decay, layers=list(range(1, 13)), names=[str(i) for i in range(12)], direction="forward",
                          reference="r")
    assert (verdict.kind, verdict.name) == ("vanishing", "7")
    assert judge_trend([1.0, 2.0, math.nan], layers=[1, 2, 3], names="abc", direction="forward",
                       reference="r").kind == "overflow"


def test_find_blocks_takes_the_innermost_repeated_modules():
    from berry.torch._probe import find_blocks

    assert list(find_blocks(_zoo("resnet18", auto=False)[0])) == [
        f"layer{stage}.{index}" for stage in range(1, 5) for index in range(2)]
    assert list(find_blocks(_zoo("convnext", auto=False)[0])) == [
        f"stages.{stage}.{index}" for stage in range(3) for index in range(2)]
    assert find_blocks(_mlp(3, 8, 1.0)) == {}  # a plain stack: its layers are judged, one by one


def test_preact_std_is_a_deprecated_name_of_output_std():
    row = _row(1, "layer", 2.5, 1.0, "layers")
    with pytest.warns(DeprecationWarning, match="output_std"):
        assert row.preact_std == 2.5


def test_a_block_added_outside_it_is_measured_on_the_stream_not_the_branch():
    # ResidualMLP computes x = x + block(x): the block returns the branch; the stream is what the next block reads
    model, inputs = _zoo("residual_mlp", auto=True)
    entering: list[float] = []

    def keep(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        entering.append(float(args[0].double().std(unbiased=False)))

    hooks = [module.register_forward_hook(keep) for module in [*model.blocks, model.head]]
    with torch.no_grad():
        model(*inputs)
    for hook in hooks:
        hook.remove()
    rows = [s for s in probe(model, inputs).networks[0].layers if s.role == "block"]
    np.testing.assert_allclose([s.input_std for s in rows], entering[:-1], rtol=1e-6)
    np.testing.assert_allclose([s.output_std for s in rows], entering[1:], rtol=1e-6)  # not the branch's std
    # GPT's blocks return the stream itself
    model, inputs = _zoo("gpt", auto=True)
    leaving: list[float] = []
    hooks = [block.register_forward_hook(lambda m, a, o: leaving.append(float(o.double().std(unbiased=False))) and None)
             for block in model.transformer["h"]]
    with torch.no_grad():
        model(*inputs)
    for hook in hooks:
        hook.remove()
    rows = [s for s in probe(model, inputs).networks[0].layers if s.role == "block"]
    np.testing.assert_allclose([s.output_std for s in rows], leaving, rtol=1e-6)

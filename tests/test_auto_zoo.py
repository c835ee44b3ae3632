"""The model zoo, initialized by ``auto_init`` with no options, measured by this file's own hooks.

Nothing here reads berry's measurements: every statistic comes from plain
forward hooks (module outputs and inputs) and tensor hooks (their gradients)
registered below, on one forward and one backward pass with a fixed seed.
The loss is ``sum(output * r)`` with ``r ~ N(0, 1)`` (a random direction),
or the cross-entropy against random next tokens for the language models.

Checks (see docs/auto.md for why each model gets what it gets):

* the deep MLPs: every ``Linear`` output's std within [0.5, 2] of the
  input's, the first layer's gradient std within [0.1, 10] of the output
  gradient's (issue 12's bands);
* every model with repeated blocks: the signal entering each block within
  [0.5, 2] of what entered the first (no growth or decay with depth), and the
  gradient leaving each block within [0.1, 10] of the last block's;
* every weight: its layer's measured output std within [0.5, 2] of the
  report's prediction (the analysis is right, not only the outcome);
* the language models: initial loss within 0.2 of ln(vocabulary).
"""

from __future__ import annotations

import math
import re

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from berry.torch.auto import auto_init  # noqa: E402
from berry.torch.auto.zoo import ZOO, build  # noqa: E402

#: Repeated blocks of each model, by module name.
BLOCKS = {
    "mlp_relu": r"^\d+$", "mlp_tanh": r"^\d+$", "mlp_gelu": r"^\d+$", "mlp_silu": r"^\d+$",
    "residual_mlp": r"^blocks\.\d+$", "resnet18_bn": r"^layer\d\.\d$", "resnet18": r"^layer\d\.\d$",
    "transformer_pre_ln": r"^1\.layers\.\d$", "transformer_post_ln": r"^1\.layers\.\d$",
    "gpt": r"^transformer\.h\.\d$", "vit": r"^blocks\.\d$", "convnext": r"^stages\.\d\.\d$",
    "swiglu": r"^layers\.\d$", "control_flow": r"^deep\.\d$", "lstm_lm": r"^rnn$",
}
LANGUAGE_MODELS = {"gpt": 1000, "lstm_lm": 1000, "swiglu": 1000}
ACTIVATIONS = (nn.ReLU, nn.Tanh, nn.GELU, nn.SiLU)


def _std(tensor: torch.Tensor) -> float:
    return float(tensor.detach().to(torch.float64).std())


def measure(name: str):
    """auto_init with no options, then one forward/backward pass watched by plain hooks."""
    model, inputs = build(name, seed=0)
    report = auto_init(model, *inputs, measure=False)  # no initialization option; berry's own measurement off
    blocks = re.compile(BLOCKS[name])
    stats: dict[str, dict[str, float]] = {}
    handles = []
    for module_name, module in model.named_modules():
        weighted = isinstance(getattr(module, "weight", None), nn.Parameter) and not isinstance(
            module, (nn.LayerNorm, nn.BatchNorm2d))
        is_block = bool(blocks.match(module_name)) and not isinstance(module, ACTIVATIONS)
        weighted = weighted or isinstance(module, (nn.LSTM, nn.MultiheadAttention))
        if not (weighted or is_block):
            continue

        def hook(mod, args, output, name=module_name, is_block=is_block):
            out = output[0] if isinstance(output, tuple) else output
            record = stats.setdefault(name, {"block": float(is_block)})
            record["out"] = _std(out)
            if out.requires_grad:
                out.register_hook(lambda g, r=record: r.__setitem__("grad_out", _std(g)))
            if args and torch.is_tensor(args[0]) and args[0].is_floating_point():
                record["in"] = _std(args[0])
                if args[0].requires_grad:
                    args[0].register_hook(lambda g, r=record: r.__setitem__("grad_in", _std(g)))

        handles.append(module.register_forward_hook(hook))
    grads: dict[str, float] = {}
    output = model(*inputs)
    output.register_hook(lambda g: grads.__setitem__("output", _std(g)))
    if name in LANGUAGE_MODELS:
        vocabulary = LANGUAGE_MODELS[name]
        targets = torch.randint(0, vocabulary, inputs[0].shape, generator=torch.Generator().manual_seed(7))
        loss = nn.functional.cross_entropy(output.reshape(-1, vocabulary), targets.reshape(-1))
    else:
        direction = torch.randn(output.shape, generator=torch.Generator().manual_seed(7))
        loss = (output * direction).sum()
    loss.backward()
    for handle in handles:
        handle.remove()
    return model, inputs, report, stats, grads["output"], float(loss.detach())


@pytest.fixture(scope="module")
def measured():
    cache: dict[str, tuple] = {}

    def get(name):
        if name not in cache:
            cache[name] = measure(name)
        return cache[name]

    return get


@pytest.mark.parametrize("name", ["mlp_relu", "mlp_tanh", "mlp_gelu", "mlp_silu"])
def test_deep_mlps_keep_signal_and_gradient(measured, name):
    model, inputs, report, stats, output_grad, _ = measured(name)
    input_std = _std(inputs[0])
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 51
    ratios = [stats[n]["out"] / input_std for n in linears]
    assert 0.5 <= min(ratios) and max(ratios) <= 2.0, (min(ratios), max(ratios))
    first = stats[linears[0]]["grad_out"] / output_grad
    assert 0.1 <= first <= 10.0, first
    assert report.stacks and report.stacks[0]["depth"] == 50


@pytest.mark.parametrize("name", sorted(n for n in BLOCKS if not n.startswith("mlp_") and n != "lstm_lm"))
def test_blocks_neither_grow_nor_vanish(measured, name):
    _, _, _, stats, _, _ = measured(name)
    blocks = [record for record in stats.values() if record["block"]]
    assert len(blocks) >= 2
    entering = [b["in"] for b in blocks]
    forward = [value / entering[0] for value in entering]
    assert 0.5 <= min(forward) and max(forward) <= 2.0, forward
    leaving = [b["grad_in"] for b in blocks if "grad_in" in b]
    backward = [value / blocks[-1]["grad_out"] for value in leaving]
    assert 0.1 <= min(backward) and max(backward) <= 10.0, backward


@pytest.mark.parametrize("name", sorted(ZOO))
def test_measured_layers_match_the_prediction(measured, name):
    model, _, report, stats, _, _ = measured(name)
    compared = 0
    first_parameter = {nn.LSTM: "weight_ih_l0", nn.MultiheadAttention: "in_proj_weight"}
    for module_name, record in stats.items():
        module = model.get_submodule(module_name)
        local = first_parameter.get(type(module), "weight")
        if not isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding, *first_parameter)) or "out" not in record:
            continue
        row = report[f"{module_name}.{local}"]
        if row.predicted_std is None or row.name != f"{module_name}.{local}":
            continue  # a tied tensor's prediction is at its first use
        ratio = record["out"] / row.predicted_std
        assert 0.5 <= ratio <= 2.0, (module_name, record["out"], row.predicted_std)
        compared += 1
    assert compared >= 2


@pytest.mark.parametrize("name", sorted(LANGUAGE_MODELS))
def test_language_models_start_near_log_vocabulary(measured, name):
    _, _, report, _, _, loss = measured(name)
    assert abs(loss - math.log(LANGUAGE_MODELS[name])) < 0.2, loss
    assert report.parameters  # the plan names every parameter


def test_tied_head_sets_the_shared_scale(measured):
    model, _, report, _, _, _ = measured("gpt")
    wte = report["transformer.wte.weight"]
    assert wte.tie == "lm_head.weight"
    # the head reads a LayerNorm output (unit second moment): std = logit_std / sqrt(d)
    assert math.isclose(wte.init["std"], 0.2 / math.sqrt(64), rel_tol=0.02)
    assert model.lm_head.weight is model.transformer["wte"].weight


def test_control_flow_model_is_recorded_on_its_real_path(measured):
    _, _, report, _, _, _ = measured("control_flow")
    assert report.recorded_on == "real"
    assert any("depends on values" in note for note in report.notes)
    assert report["deep.0.weight"].predicted_std is not None  # the branch the input took was planned

"""auto_init on real Hugging Face models (tiny configs, random init, no downloads), checked with independent hooks.

Each model is initialized by ``auto_init`` with no options and measured here
with plain forward hooks and autograd, not berry's probe: every weight's
output std against the plan's prediction, the residual stream at each
block's input (neither growing nor vanishing over the depth), the gradient
at the first block against the last, a language model's initial loss
against ln(V); then ``init_model(fresh, report.rules, seed=report.seed)``
must give the same parameters and buffers bit for bit.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

transformers = pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from berry.torch import auto_init, init_model  # noqa: E402

V, H, LAYERS = 1000, 64, 4


def _gpt2() -> torch.nn.Module:  # Conv1D: torch.addmm(bias, x, weight)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=V, n_embd=H, n_layer=LAYERS, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0))


def _llama(tie: bool) -> torch.nn.Module:  # rotary embeddings, SwiGLU, RMSNorm, grouped-query attention
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=V, hidden_size=H, intermediate_size=172, num_hidden_layers=LAYERS, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=tie))


def _neox() -> torch.nn.Module:  # parallel residual: x + attn(ln1 x) + mlp(ln2 x)
    return transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(
        vocab_size=V, hidden_size=H, intermediate_size=256, num_hidden_layers=LAYERS, num_attention_heads=4,
        max_position_embeddings=64))


def _convnext() -> torch.nn.Module:
    return transformers.ConvNextForImageClassification(transformers.ConvNextConfig(
        hidden_sizes=[16, 32, 64, 64], depths=[1, 1, 2, 1], num_labels=10))


def _resnet() -> torch.nn.Module:  # BatchNorm in training mode: its running statistics must be left alone
    return transformers.ResNetForImageClassification(transformers.ResNetConfig(
        embedding_size=16, hidden_sizes=[16, 32, 64, 64], depths=[1, 1, 2, 1], layer_type="basic", num_labels=10))


MODELS = {
    "gpt2": (_gpt2, "transformer.h"),
    "llama_tied": (lambda: _llama(True), "model.layers"),
    "llama": (lambda: _llama(False), "model.layers"),
    "gpt_neox": (_neox, "gpt_neox.layers"),
    "convnext": (_convnext, "convnext.encoder.stages"),
    "resnet": (_resnet, "resnet.encoder.stages"),
}


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(1234)  # the model's own init, which auto_init must replace entirely
    return MODELS[name][0]()


def _example(name: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if name in ("convnext", "resnet"):
        return torch.randn(4, 3, 32, 32, generator=generator)
    return torch.randint(0, V, (4, 32), generator=generator)


def _rms(t: torch.Tensor) -> float:
    return float(t.detach().double().pow(2).mean().sqrt())


def _measure(model: torch.nn.Module, blocks_path: str, x: torch.Tensor) -> dict:
    """Weight outputs' std, each block's input std and gradient, the loss: plain hooks and autograd."""
    outputs: dict[str, float] = {}
    block_in: dict[int, float] = {}
    block_grad: dict[int, float] = {}
    handles = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.nn.Parameter) and weight.dim() >= 2:
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: outputs.__setitem__(name, _rms(o)) if torch.is_tensor(o) else None))
    blocks = model.get_submodule(blocks_path)
    for i, block in enumerate(blocks):
        def pre(module, args, kwargs, i=i):
            h = args[0] if args else kwargs["hidden_states"]
            block_in[i] = _rms(h)
            h.register_hook(lambda g: block_grad.__setitem__(i, _rms(g)))
        handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
    try:
        output = model(**({"pixel_values": x} if x.is_floating_point() else {"input_ids": x}))
        logits = output.logits
        generator = torch.Generator().manual_seed(1)
        if x.is_floating_point():
            loss = (logits * torch.randn(logits.shape, generator=generator)).sum()
        else:
            labels = torch.randint(0, V, logits.shape[:-1], generator=generator)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), labels.reshape(-1))
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    return {"outputs": outputs, "stream": [block_in[i] for i in sorted(block_in)],
            "grad": [block_grad[i] for i in sorted(block_grad)], "loss": float(loss.detach())}


@pytest.mark.parametrize("name", list(MODELS))
def test_auto_init_hugging_face(name: str) -> None:
    torch.set_num_threads(1)
    model, x = _build(name), _example(name)
    report = auto_init(model, x, seed=0)
    initialized = {key: value.clone() for key, value in model.state_dict().items()}
    assert report.not_understood == () or all(u["op"] == "mul" for u in report.not_understood), \
        report.not_understood  # rotary embeddings' products with cos/sin keep the norm
    assert all(row.rule != "kept" for row in report if row.role in ("weight", "embedding")), report.table()

    measured = _measure(model, MODELS[name][1], x)
    for row in report:  # every weight whose module output is its op's output: as predicted
        module = row.name.removesuffix(".weight")
        if row.role in ("weight", "embedding") and module in measured["outputs"] and row.predicted_std:
            ratio = measured["outputs"][module] / row.predicted_std
            assert 0.5 < ratio < 2.0, (row.name, measured["outputs"][module], row.predicted_std)
    stream = measured["stream"]
    assert all(0.5 < s / stream[0] < 2.0 for s in stream), stream
    grad = measured["grad"]
    assert 0.1 < grad[0] / grad[-1] < 10.0, grad
    if not x.is_floating_point():
        assert abs(measured["loss"] - math.log(V)) < 0.2, measured["loss"]
        embedding, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
        assert (embedding is head) == model.config.tie_word_embeddings

    fresh = _build(name)
    init_model(fresh, report.rules, seed=report.seed)
    expected = fresh.state_dict()
    for key, value in initialized.items():  # parameters and buffers (BatchNorm's running statistics)
        assert torch.equal(value, expected[key]), key


@pytest.mark.parametrize("name", ["gpt2", "llama_tied"])
def test_meta_plan_materialize_apply_keeps_ties(name: str) -> None:
    torch.set_num_threads(1)
    import berry.torch
    from berry.torch.auto import InputSpec

    with torch.device("meta"):
        model = _build(name)
    report = berry.torch.auto_plan(model, InputSpec((4, 32), dtype=torch.long))
    if name == "llama_tied":  # its rotary tables are buffers made in __init__: materialize says they need refilling
        with pytest.warns(UserWarning, match=r"materialize: the buffers \['model.rotary_emb.inv_freq'.*uninitialized"):
            berry.torch.materialize(model, "cpu")
    else:
        berry.torch.materialize(model, "cpu")
    report.apply(model)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    reference = _build(name)
    auto_init(reference, InputSpec((4, 32), dtype=torch.long), seed=0)
    for (key, value), other in zip(model.state_dict().items(), reference.state_dict().values(), strict=True):
        if key.endswith(("inv_freq", "original_inv_freq", "masked_bias", ".bias")) and \
                not isinstance(dict(model.named_parameters()).get(key), torch.nn.Parameter):
            continue  # buffers computed by the constructor: to_empty leaves them for the model to refill
        assert torch.equal(value, other), key


def test_init_model_without_rules_plans_like_auto_init() -> None:
    torch.set_num_threads(1)
    model, reference = _build("gpt2"), _build("gpt2")
    init_model(model, seed=0)
    auto_init(reference, seed=0)
    for (key, value), other in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert torch.equal(value, other), key


def _mamba() -> torch.nn.Module:  # the slow CPU path: the selective scan written out in torch ops
    torch.manual_seed(1234)
    return transformers.MambaForCausalLM(transformers.MambaConfig(
        vocab_size=V, hidden_size=H, state_size=16, num_hidden_layers=LAYERS, expand=2))


def test_mamba_scan_is_not_given_a_scale_from_an_implausible_prediction() -> None:
    """The scan's predicted second moment (about 1e12: exp of an unmodelled product, then the recurrence) must
    not set out_proj's scale (it gave std 1e-9: every mixer added nothing to the stream)."""
    torch.set_num_threads(1)
    model, x = _mamba(), _example("mamba")

    def measure(m: torch.nn.Module) -> tuple[dict[str, float], list[float], float]:
        outputs: dict[str, float] = {}
        stream: list[float] = []
        handles = [layer.mixer.out_proj.register_forward_hook(
            lambda mod, i, o, k=k: outputs.__setitem__(k, _rms(o))) for k, layer in enumerate(m.backbone.layers)]
        handles += [layer.register_forward_pre_hook(lambda mod, a: stream.append(_rms(a[0])))
                    for layer in m.backbone.layers]
        with torch.no_grad():
            logits = m(input_ids=x).logits
        for handle in handles:
            handle.remove()
        labels = torch.randint(0, V, logits.shape[:-1], generator=torch.Generator().manual_seed(1))
        loss = float(torch.nn.functional.cross_entropy(logits.reshape(-1, V), labels.reshape(-1)))
        return outputs, stream, loss

    reference, _, _ = measure(_mamba())  # the model's own init
    report = auto_init(model, x, seed=0)
    initialized = {key: value.clone() for key, value in model.state_dict().items()}
    listed = {item["module"]: item["reason"] for item in report.not_understood if item["op"] == "linear"}
    for k in range(LAYERS):
        name = f"backbone.layers.{k}.mixer.out_proj.weight"
        assert report.rules[name] == "keep" and report[name].role == "kept", report[name]
        assert "input second moment predicted as" in listed[f"backbone.layers.{k}.mixer.out_proj"]
    assert any("out_proj" in note and "taken to have the target second moment" in note for note in report.notes)
    outputs, stream, loss = measure(model)
    for k, std in outputs.items():  # each mixer writes to the stream at about the scale the model's init gives
        assert 0.1 < std / reference[k] < 10.0, (outputs, reference)
    assert all(math.isfinite(s) for s in stream) and stream[-1] > 2 * stream[0], stream
    assert abs(loss - math.log(V)) < 0.2, loss
    fresh = _mamba()
    init_model(fresh, report.rules, seed=report.seed)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, initialized[key]), key

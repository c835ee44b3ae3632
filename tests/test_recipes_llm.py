"""LLM recipes: every parameter's law against the trainer's formula, written out here independently.

Each recipe (Megatron-LM, GPT-NeoX, OLMo, OLMo-core, torchtitan's Llama, RWKV's small embedding) is
applied to models named like Hugging Face's LlamaForCausalLM, MistralForCausalLM and GPT2LMHeadModel (the
real classes, tiny configs, when transformers is installed), torchtitan, Megatron-Core, OLMo and OLMo-core;
each parameter's values are then KS-tested against the law this file derives from the trainer's code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helpers import assert_ks

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

from torch import nn  # noqa: E402

from berry.torch import schemes  # noqa: E402
from berry.torch.models import Transformer  # noqa: E402


# ----------------------------------------------------------------------------- models with the trainers' names
def _linear(module: nn.Module, name: str, fan_in: int, fan_out: int, bias: bool = False) -> None:
    module.add_module(name, nn.Linear(fan_in, fan_out, bias=bias))


def _tree(names: dict[str, tuple[int, int]], vocab: int, embed: list[str]) -> nn.Module:
    """A module tree with exactly the given ``path -> (fan_in, fan_out)`` linears and ``embed`` embeddings."""
    root = nn.Module()
    for path in embed:
        *parents, leaf = path.split(".")
        node = root
        for part in parents:
            if not hasattr(node, part):
                node.add_module(part, nn.Module())
            node = getattr(node, part)
        node.add_module(leaf, nn.Embedding(vocab, 32))
    for path, (fan_in, fan_out) in names.items():
        *parents, leaf = path.split(".")
        node = root
        for part in parents:
            if not hasattr(node, part):
                node.add_module(part, nn.Module())
            node = getattr(node, part)
        _linear(node, leaf, fan_in, fan_out)
    return root


D, HIDDEN, LAYERS, VOCAB = 32, 96, 3, 120


def torchtitan_model() -> nn.Module:
    names: dict[str, tuple[int, int]] = {}
    for i in range(LAYERS):
        for w in ("wq", "wk", "wv", "wo"):
            names[f"layers.{i}.attention.{w}"] = (D, D)
        names[f"layers.{i}.feed_forward.w1"] = (D, HIDDEN)
        names[f"layers.{i}.feed_forward.w2"] = (HIDDEN, D)
        names[f"layers.{i}.feed_forward.w3"] = (D, HIDDEN)
    names["output"] = (D, VOCAB)
    model = _tree(names, VOCAB, ["tok_embeddings"])
    model.norm = nn.RMSNorm(D)
    return model


def megatron_model() -> nn.Module:
    names: dict[str, tuple[int, int]] = {}
    for i in range(LAYERS):
        names[f"decoder.layers.{i}.self_attention.linear_qkv"] = (D, 3 * D)
        names[f"decoder.layers.{i}.self_attention.linear_proj"] = (D, D)
        names[f"decoder.layers.{i}.mlp.linear_fc1"] = (D, HIDDEN)
        names[f"decoder.layers.{i}.mlp.linear_fc2"] = (HIDDEN, D)
    names["output_layer"] = (D, VOCAB)
    return _tree(names, VOCAB, ["embedding.word_embeddings", "embedding.position_embeddings"])


def olmo_model() -> nn.Module:
    names: dict[str, tuple[int, int]] = {}
    for i in range(LAYERS):
        names[f"transformer.blocks.{i}.att_proj"] = (D, 3 * D)
        names[f"transformer.blocks.{i}.attn_out"] = (D, D)
        names[f"transformer.blocks.{i}.ff_proj"] = (D, 2 * HIDDEN)
        names[f"transformer.blocks.{i}.ff_out"] = (HIDDEN, D)
    names["transformer.ff_out"] = (D, VOCAB)
    return _tree(names, VOCAB, ["transformer.wte"])


def olmo_core_model() -> nn.Module:
    names: dict[str, tuple[int, int]] = {}
    for i in range(LAYERS):
        for w in ("w_q", "w_k", "w_v", "w_out"):
            names[f"blocks.{i}.attention.{w}"] = (D, D)
        names[f"blocks.{i}.feed_forward.w1"] = (D, HIDDEN)
        names[f"blocks.{i}.feed_forward.w2"] = (HIDDEN, D)
        names[f"blocks.{i}.feed_forward.w3"] = (D, HIDDEN)
    names["lm_head.w_out"] = (D, VOCAB)
    return _tree(names, VOCAB, ["embeddings"])


def hf_model(kind: str) -> nn.Module:
    transformers = pytest.importorskip("transformers", reason="the Hugging Face presets are tried on transformers' classes")
    if kind == "gpt2":
        config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=D, n_layer=LAYERS, n_head=4,
                                         bos_token_id=0, eos_token_id=0)
        return transformers.GPT2LMHeadModel(config)
    if kind == "gpt_neox":  # transformers 5 names its output layer lm_head (embed_out before)
        config = transformers.GPTNeoXConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=HIDDEN,
                                            num_hidden_layers=LAYERS, num_attention_heads=4, tie_word_embeddings=False)
        return transformers.GPTNeoXForCausalLM(config)
    common = dict(vocab_size=VOCAB, hidden_size=D, intermediate_size=HIDDEN, num_hidden_layers=LAYERS,
                  num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    if kind == "llama":
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**common))
    return transformers.MistralForCausalLM(transformers.MistralConfig(**common))


# ----------------------------------------------------------------------------- what each name is, by suffix
SUFFIXES = {  # written from the trainers' module names, independently of berry's presets
    "embedding": ("embed_tokens.weight", "wte.weight", "tok_embeddings.weight", "word_embeddings.weight",
                  "embed_in.weight", "embeddings.weight"),
    "position": ("wpe.weight", "position_embeddings.weight"),
    "out_attn": ("o_proj.weight", "attn.c_proj.weight", "attention.wo.weight", "linear_proj.weight",
                 "attn_out.weight", "attention.w_out.weight", "attention.dense.weight"),
    "out_ffn": ("down_proj.weight", "mlp.c_proj.weight", "feed_forward.w2.weight", "linear_fc2.weight",
                "dense_4h_to_h.weight"),
    "up": ("up_proj.weight", "feed_forward.w3.weight"),
    "head": ("lm_head.weight", "output.weight", "output_layer.weight", "transformer.ff_out.weight",
             "lm_head.w_out.weight", "embed_out.weight"),
}


def kind_of(name: str) -> str | None:
    if name.startswith("transformer.blocks.") and name.endswith("ff_out.weight"):
        return "out_ffn"  # OLMo's block ff_out, not the model's output transformer.ff_out
    for kind in ("head", "position", "embedding", "out_attn", "out_ffn", "up"):
        if any(name == s or name.endswith("." + s) for s in SUFFIXES[kind]):
            return kind
    return "in" if name.endswith("weight") else None


def layer_of(name: str) -> int:
    return next(int(p) for p in name.split(".") if p.isdigit())


def fan_in_of(module: nn.Module, shape: tuple[int, ...]) -> int:
    return shape[0] if type(module).__name__ == "Conv1D" else shape[1]


# ----------------------------------------------------------------------------- the trainers' formulas
def expected(recipe: str, options: dict, kind: str, name: str, fan_in: int, n_layers: int, d: int):
    """(distribution, std, absolute bound) the trainer's code gives this parameter."""
    if recipe == "megatron":  # init_method_normal / scaled_init_method_normal
        sigma = options.get("init_method_std", 0.02)
        return ("normal", sigma / math.sqrt(2 * n_layers) if kind in ("out_attn", "out_ffn") else sigma, None)
    if recipe == "gpt_neox":
        table = {"normal": 0.02, "scaled_normal": 0.02 / math.sqrt(2 * n_layers),
                 "small_init": math.sqrt(2 / (5 * d)), "wang_init": 2 / n_layers / math.sqrt(d)}
        key = options["output_layer_init_method"] if kind in ("out_attn", "out_ffn") else options["init_method"]
        return ("normal", table[key], None)
    if recipe == "olmo":
        fn = options["init_fn"]
        if fn == "mitchell":
            std = {"out_attn": 1 / math.sqrt(2 * d * (layer_of(name) + 1)) if kind == "out_attn" else 0,
                   "out_ffn": 1 / math.sqrt(2 * fan_in * (layer_of(name) + 1)) if kind == "out_ffn" else 0,
                   }.get(kind, 1 / math.sqrt(d))
            return ("truncated_normal", std, 3 * std)
        if fn == "full_megatron":
            if kind in ("out_attn", "out_ffn"):
                std = 0.02 / math.sqrt(2 * n_layers)
            elif kind == "head":
                std = d**-0.5
            else:
                std = 0.02
            return ("truncated_normal", std, 3 * std)
        return ("normal", 0.02, None)
    if recipe == "olmo_core":
        method = options["init_method"]
        if method == "normal":
            return ("truncated_normal", 0.02, 0.06)
        if kind in ("embedding", "position"):
            return ("normal", 1.0, None)
        if kind == "head":
            return ("truncated_normal", d**-0.5, 3 * d**-0.5)
        if kind in ("out_attn", "out_ffn", "up"):
            std = 0.02 / math.sqrt(2 * (n_layers if method == "llama" else layer_of(name) + 1))
            return ("truncated_normal", std, 3 * std)
        return ("truncated_normal", 0.02, 0.06)
    assert recipe == "llama"  # torchtitan
    if kind in ("embedding", "position"):
        return ("normal", 1.0, None)
    if kind == "head":
        return ("truncated_normal", d**-0.5, 3 * d**-0.5)
    if kind in ("out_attn", "out_ffn", "up"):
        depth = layer_of(name) + 1 if options.get("depth_init", True) else n_layers
        return ("truncated_normal", 0.02 / math.sqrt(2 * depth), 2.0)
    return ("truncated_normal", 0.02, 2.0)


def check_law(values: np.ndarray, law: tuple, where: str) -> None:
    distribution, std, bound = law
    if distribution == "normal":
        cdf = stats.norm(scale=std).cdf
    elif distribution == "uniform":
        assert np.abs(values).max() <= bound, where
        cdf = stats.uniform(loc=-bound, scale=2 * bound).cdf
    else:
        assert np.abs(values).max() <= bound * (1 + 1e-6), where
        cdf = stats.truncnorm(-bound / std, bound / std, scale=std).cdf
    assert_ks(values, cdf, f"{where} ({law})")


def check_recipe(model: nn.Module, recipe: str, options: dict, report, *, small_embedding: float | None = None) -> int:
    """Every parameter of ``model`` against the formulas; returns how many weights were KS-tested."""
    modules = dict(model.named_modules())
    named = [(n, p) for n, p in model.named_parameters()]
    outs = [n for n, _ in named if kind_of(n) == "out_attn"]
    n_layers = len(outs)
    first = modules[outs[0].rsplit(".", 1)[0]]
    d = first.weight.shape[1] if type(first).__name__ == "Conv1D" else first.weight.shape[0]
    tested = 0
    for name, parameter in named:
        module = modules[name.rsplit(".", 1)[0]] if "." in name else model
        values = parameter.detach().double().numpy().ravel()
        if parameter.dim() == 1:
            if name.endswith("bias"):
                assert not values.any(), name
            else:
                assert (values == 1).all(), name  # norm gains
            continue
        kind = kind_of(name)
        if small_embedding is not None and kind == "embedding":
            law = ("uniform", small_embedding / math.sqrt(3), small_embedding)
        else:
            law = expected(recipe, options, kind, name, fan_in_of(module, tuple(parameter.shape)), n_layers, d)
        check_law(values, law, f"{recipe} {options} {name}")
        tested += 1
    assert report.constants["n_layers"] == n_layers and report.constants["d_model"] == d
    return tested


RECIPES = [
    ("megatron", {}),
    ("megatron", {"init_method_std": 0.006}),
    ("gpt_neox", {"init_method": "normal", "output_layer_init_method": "scaled_normal"}),
    ("gpt_neox", {"init_method": "small_init", "output_layer_init_method": "wang_init"}),
    ("olmo", {"init_fn": "mitchell"}),
    ("olmo", {"init_fn": "full_megatron"}),
    ("olmo", {"init_fn": "normal"}),
    ("olmo_core", {"init_method": "normal"}),
    ("olmo_core", {"init_method": "llama"}),
    ("olmo_core", {"init_method": "llama_depth"}),
    ("llama", {"depth_init": True}),
    ("llama", {"depth_init": False}),
]
NATIVE = {"torchtitan": torchtitan_model, "megatron": megatron_model, "olmo": olmo_model, "olmo_core": olmo_core_model}


@pytest.mark.parametrize(("recipe", "options"), RECIPES)
@pytest.mark.parametrize("naming", ["torchtitan", "megatron", "olmo", "olmo_core", "nanogpt"])
def test_recipe_laws_on_native_names(recipe, options, naming):
    if naming == "nanogpt":
        model = Transformer(n_layer=LAYERS, n_embd=D, n_head=4, vocab_size=VOCAB, block_size=16)
        expected_preset = "gpt2"
    else:
        model = NATIVE[naming]()
        expected_preset = naming
    report = getattr(schemes, recipe)(model, seed=3, **options)
    assert report.preset == expected_preset
    assert check_recipe(model, recipe, options, report) >= 4 * LAYERS


HF_CASES = [(kind, *case) for kind in ("llama", "gpt2") for case in RECIPES] + [
    ("mistral", *case) for case in RECIPES if case[0] in ("megatron", "olmo_core")  # Llama's names: a few suffice
] + [("gpt_neox", *case) for case in RECIPES if case[0] in ("gpt_neox", "olmo", "llama")]  # output law != input law


@pytest.mark.parametrize(("kind", "recipe", "options"), HF_CASES)
def test_recipe_laws_on_hugging_face_classes(kind, recipe, options):
    model = hf_model(kind)
    report = getattr(schemes, recipe)(model, seed=1, **options)
    assert report.preset == (kind if kind in ("gpt2", "gpt_neox") else "llama")
    check_recipe(model, recipe, options, report)
    roles = set(report.roles.values())
    assert {"attention_input", "attention_output", "ffn_input", "ffn_output", "embedding"} <= roles
    assert ("position" in roles) == (kind == "gpt2") and ("ffn_up" in roles) == (kind not in ("gpt2", "gpt_neox"))
    heads = [n for n, _ in model.named_parameters() if kind_of(n) == "head"]
    assert all(report.roles[n] == "lm_head" for n in heads), {n: report.roles[n] for n in heads}
    with torch.no_grad():  # the initialized model still runs
        logits = model(torch.zeros(1, 5, dtype=torch.long)).logits
    assert torch.isfinite(logits).all()


def test_small_embedding_replaces_the_token_embedding_only():
    model = hf_model("gpt2")
    report = schemes.megatron(model, seed=0, small_embedding=True)
    assert report.constants["small_embedding_bound"] == schemes.SMALL_EMBEDDING_BOUND == 1e-4
    check_recipe(model, "megatron", {}, report, small_embedding=1e-4)
    assert model.transformer.wpe.weight.detach().std() > 0.01  # positions keep the recipe's law


def test_small_embedding_bound_on_any_recipe():
    model = torchtitan_model()
    report = schemes.llama(model, seed=0, small_embedding=3e-3)
    check_recipe(model, "llama", {}, report, small_embedding=3e-3)


def test_olmo_options_embedding_std_and_cutoff():
    model = olmo_model()
    schemes.olmo(model, init_fn="full_megatron", scale_emb_init=True, seed=0)
    std = 0.02 * math.sqrt(D)
    check_law(model.transformer.wte.weight.detach().double().numpy().ravel(), ("truncated_normal", std, 3 * std), "wte")
    schemes.olmo(model, init_fn="normal", init_cutoff_factor=2.0, emb_init_std=0.5, seed=0)
    check_law(model.transformer.wte.weight.detach().double().numpy().ravel(), ("truncated_normal", 0.5, 1.0), "wte")
    w = getattr(model.transformer.blocks, "0").attn_out.weight.detach().double().numpy().ravel()
    check_law(w, ("truncated_normal", 0.02, 0.04), "attn_out")


def test_llm_law_matches_the_schemes():
    model = olmo_core_model()
    report = schemes.olmo_core(model, init_method="llama_depth", seed=0)
    law = schemes.llm_law("olmo_core", "attention_output", n_layers=LAYERS, d_model=D, layer=2, init_method="llama_depth")
    assert report["blocks.2.attention.w_out.weight"].std == pytest.approx(law.std)
    assert law.bound == pytest.approx(3 * law.std)


def test_recipes_are_keyed_and_idempotent():
    a, b = torchtitan_model(), torchtitan_model()
    schemes.llama(a, seed=5)
    schemes.llama(b, seed=5)
    schemes.llama(b, seed=5)
    for (name, x), (_, y) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(x, y), name
    schemes.llama(b, seed=6)
    wq = "layers.0.attention.wq.weight"
    assert not torch.equal(a.get_parameter(wq), b.get_parameter(wq))


def test_pipeline_stage_needs_its_depth():
    model = torchtitan_model()  # a stage holding layers 0..2 of a 12-layer model
    report = schemes.llama(model, depth_init=False, n_layers=12, seed=0)
    assert report["layers.0.attention.wo.weight"].std == pytest.approx(0.02 / math.sqrt(24))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: schemes.megatron(m, init_method_std=-1.0), ValueError, "init_method_std"),
        (lambda m: schemes.gpt_neox(m, init_method="xavier"), ValueError, "init_method"),
        (lambda m: schemes.olmo(m, init_fn="kaiming"), ValueError, "init_fn"),
        (lambda m: schemes.olmo_core(m, init_method="llama2"), ValueError, "init_method"),
        (lambda m: schemes.llama(m, small_embedding=-1.0), ValueError, "small_embedding"),
        (lambda m: schemes.llama(m, preset="nope"), ValueError, "preset"),
        (lambda m: schemes.llama(m, ffn="x"), TypeError, "ffn"),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call(torchtitan_model())


def test_a_model_without_the_roles_is_a_preset_error():
    with pytest.raises(schemes.PresetError, match="attention_output"):
        schemes.megatron(nn.Sequential(nn.Linear(4, 4)))


def test_zero_centered_norm_gains_stay_one():
    transformers = pytest.importorskip("transformers", reason="Gemma's RMSNorm is the zero-centered one tried here")
    config = transformers.GemmaConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=HIDDEN, num_hidden_layers=LAYERS,
                                      num_attention_heads=4, num_key_value_heads=2, head_dim=D // 4)
    model = transformers.GemmaForCausalLM(config)  # GemmaRMSNorm: x_hat * (1 + weight); Hugging Face starts weight at 0
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(0.5)
    report = schemes.megatron(model, seed=0)
    assert report.preset == "llama"
    norms = {n: m for n, m in model.named_modules() if type(m).__name__ == "GemmaRMSNorm"}
    assert len(norms) == 2 * LAYERS + 1
    x = torch.randn(3, D)
    for name, norm in norms.items():
        assert not norm.weight.any(), name  # a gain of one, not two
        torch.testing.assert_close(norm(x), x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps))
    llama = hf_model("llama")
    schemes.megatron(llama, seed=0)
    assert all((m.weight == 1).all() for m in llama.modules() if type(m).__name__ == "LlamaRMSNorm")

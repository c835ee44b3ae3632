"""Tests of the whole-network schemes against the papers' equations, written out here independently."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import berry.torch as init  # noqa: E402
from berry.torch import init_model, schemes  # noqa: E402
from berry.torch.models import ResidualMLP, ResNet, Transformer  # noqa: E402

DEPTHS = (1, 2, 6, 12, 100, 1000)


def weights(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def measured_std(tensor):
    return float(tensor.detach().double().std())


def close_std(tensor, expected, rel=0.06):
    assert measured_std(tensor) == pytest.approx(expected, rel=rel)


# ------------------------------------------------------------------------------- formulas
@pytest.mark.parametrize("n_layer", DEPTHS)
@pytest.mark.parametrize("std", [0.02, 0.01])
def test_gpt2_residual_std_is_radford_et_al(n_layer, std):
    assert schemes.gpt2_residual_std(n_layer, std) == pytest.approx(std * (2 * n_layer) ** -0.5, rel=1e-12)


@pytest.mark.parametrize("n", DEPTHS)
@pytest.mark.parametrize("m", DEPTHS)
def test_deepnorm_constants_are_the_paper_table(n, m):
    # Wang et al. 2022, Figure 2 (torchscale: encoder-decoder encoder beta written as 1/1.15).
    enc = schemes.deepnorm_constants("encoder", encoder_layers=n)
    assert (enc.encoder_alpha, enc.encoder_beta) == pytest.approx(((2 * n) ** (1 / 4), (8 * n) ** (-1 / 4)))
    assert enc.decoder_alpha is None and enc.decoder_beta is None
    dec = schemes.deepnorm_constants("decoder", decoder_layers=m)
    assert (dec.decoder_alpha, dec.decoder_beta) == pytest.approx(((2 * m) ** (1 / 4), (8 * m) ** (-1 / 4)))
    both = schemes.deepnorm_constants("encoder-decoder", encoder_layers=n, decoder_layers=m)
    assert both.encoder_alpha == pytest.approx(0.81 * (n**4 * m) ** (1 / 16))
    assert both.encoder_beta == pytest.approx(0.87 * (n**4 * m) ** (-1 / 16))
    assert both.encoder_beta == pytest.approx((n**4 * m) ** (-1 / 16) / 1.15, rel=1e-3)  # torchscale
    assert both.decoder_alpha == pytest.approx((3 * m) ** (1 / 4))
    assert both.decoder_beta == pytest.approx((12 * m) ** (-1 / 4))


@pytest.mark.parametrize("n_branches", [1, 3, 16, 54, 100])
@pytest.mark.parametrize("m", [2, 3, 4])
def test_fixup_scale_is_zhang_et_al(n_branches, m):
    assert schemes.fixup_scale(n_branches, m) == pytest.approx(n_branches ** (-1 / (2 * m - 2)))


def test_fixup_scale_single_layer_branch_is_one():
    assert schemes.fixup_scale(50, 1) == 1.0


@pytest.mark.parametrize("n", [1, 6, 12, 100])
@pytest.mark.parametrize("m", [1, 6, 12, 100])
def test_t_fixup_scales_are_huang_et_al(n, m):
    s = schemes.t_fixup_scales("encoder-decoder", encoder_layers=n, decoder_layers=m)
    assert s.encoder == pytest.approx(0.67 * n ** (-1 / 4))
    assert s.decoder == pytest.approx((9 * m) ** (-1 / 4))
    assert s.encoder_embedding == pytest.approx((9 * n) ** (-1 / 4))
    assert s.decoder_embedding == pytest.approx((9 * m) ** (-1 / 4))
    only = schemes.t_fixup_scales("decoder", decoder_layers=m)
    assert only.encoder is None and only.decoder == pytest.approx((9 * m) ** (-1 / 4))


@pytest.mark.parametrize("order", range(6))
def test_hadamard_is_sylvester(order):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    np.testing.assert_array_equal(schemes.hadamard(order), scipy_linalg.hadamard(2**order))


@pytest.mark.parametrize("out_features, in_features", [(4, 4), (3, 7), (7, 3), (8, 5), (64, 16), (100, 30), (5, 1)])
@pytest.mark.parametrize("hadamard_scale", ["paper", "orthonormal"])
def test_zero_matrix_is_algorithm_1(out_features, in_features, hadamard_scale):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    got = schemes.zero_matrix(out_features, in_features, hadamard_scale=hadamard_scale)
    if out_features <= in_features:
        expected = np.eye(out_features, in_features)
    else:  # c I* H_m I*, m = ceil(log2 P): the partial identities pick the top-left P x Q block
        m = math.ceil(math.log2(out_features))
        c = 2 ** (-(m - 1) / 2) if hadamard_scale == "paper" else 2 ** (-m / 2)
        left, right = np.eye(out_features, 2**m), np.eye(2**m, in_features)
        expected = c * left @ scipy_linalg.hadamard(2**m) @ right
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
    # An expanding layer loses no input direction: W has full column rank.
    assert np.linalg.matrix_rank(got) == min(out_features, in_features)


@pytest.mark.parametrize("base, width", [(32, 64), (64, 256), (16, 1024)])
def test_mup_rules_are_table_3(base, width):
    r = width / base
    hidden = schemes.mup_rules((width, width), (base, base))
    assert (hidden.role, hidden.fan_in_mult, hidden.fan_out_mult, hidden.init) == ("hidden", r, r, "normal")
    assert hidden.std == pytest.approx(1 / math.sqrt(width))  # variance 1/fan_in
    assert (hidden.adam_lr_mult, hidden.sgd_lr_mult) == pytest.approx((1 / r, 1.0))
    output = schemes.mup_rules((10, width), (10, base), readout_init="scaled")
    assert output.role == "output" and output.std == pytest.approx(1 / math.sqrt(base) / r)  # variance ~ 1/fan_in^2
    assert (output.adam_lr_mult, output.sgd_lr_mult) == pytest.approx((1 / r, 1 / r))
    assert schemes.mup_rules((10, width), (10, base), readout=True).init == "zeros"
    first = schemes.mup_rules((width, 8), (base, 8))
    assert first.role == "input" and first.std == pytest.approx(1 / math.sqrt(8))
    assert (first.adam_lr_mult, first.sgd_lr_mult) == pytest.approx((1, r))
    bias = schemes.mup_rules((width,), (base,), kind="bias")
    assert bias.role == "vector" and (bias.adam_lr_mult, bias.sgd_lr_mult) == pytest.approx((1, r))
    # With an explicit sigma_0 (GPT-style 0.02): hidden 0.02/sqrt(r).
    assert schemes.mup_rules((width, width), (base, base), init_std=0.02).std == pytest.approx(0.02 / math.sqrt(r))


def test_mup_rules_equal_standard_parametrization_at_base():
    rule = schemes.mup_rules((64, 64), (64, 64))
    assert (rule.fan_in_mult, rule.fan_out_mult, rule.std) == (1.0, 1.0, pytest.approx(1 / 8))


# ------------------------------------------------------------------------------- GPT-2 on models
@pytest.mark.parametrize("n_layer", [2, 6])
def test_gpt2_on_nanogpt_names(n_layer):
    model = Transformer(n_layer=n_layer, n_embd=64, n_head=4, vocab_size=96)
    report = schemes.gpt2(model, seed=3)
    expected_residual = 0.02 / math.sqrt(2 * n_layer)
    for name, p in model.named_parameters():
        if name.endswith(("attn.c_proj.weight", "mlp.c_proj.weight")):
            close_std(p, expected_residual)
            assert report.roles[name] == "residual"
        elif name.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight", "lm_head.weight")):
            close_std(p, 0.02, rel=0.1)
        elif "ln" in name:
            expected = 1.0 if name.endswith("weight") else 0.0
            assert torch.all(p == expected)
        elif name.endswith("bias"):
            assert torch.all(p == 0)
    # Keyed by (seed, fully qualified name): the same values berry.torch gives for that name.
    name = "transformer.h.1.mlp.c_proj.weight"
    expected = init.normal_(torch.empty(64, 256), 0.0, expected_residual, seed=3, name=name)
    torch.testing.assert_close(dict(model.named_parameters())[name].detach(), expected, rtol=0, atol=0)


def test_gpt2_on_fairseq_names_and_torch_transformer():
    model = Transformer(n_layer=3, n_embd=32, n_head=4, naming="fairseq")
    report = schemes.gpt2(model, seed=0)
    assert report.preset == "fairseq" and report.constants["n_layer"] == 3
    encoder = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(64, 4, 128, batch_first=True), 4)
    report = schemes.gpt2(encoder, seed=0)
    assert report.preset == "torch" and report.constants["n_layer"] == 4
    close_std(encoder.layers[2].linear2.weight, 0.02 / math.sqrt(8), rel=0.1)


def test_gpt2_keeps_residual_stream_flat_with_depth():
    torch.manual_seed(0)
    idx = torch.randint(0, 64, (4, 16))
    stds = {}
    for n_layer in (2, 32):
        model = Transformer(n_layer=n_layer, n_embd=64, n_head=4)
        schemes.gpt2(model, seed=0)
        x = model.embed(idx)
        with torch.no_grad():
            for block in model.blocks:
                x = block(x)
        stds[n_layer] = float(x.std())
    assert stds[32] / stds[2] < 1.5


# ------------------------------------------------------------------------------- DeepNet / T-Fixup
@pytest.mark.parametrize("n_layer", [2, 8])
def test_deepnet_on_fairseq_names(n_layer):
    model = Transformer(n_layer=n_layer, n_embd=64, n_head=4, norm="post", naming="fairseq")
    report = schemes.deepnet(model, seed=1)
    beta = (8 * n_layer) ** (-1 / 4)
    assert report.constants["decoder_alpha"] == pytest.approx((2 * n_layer) ** (1 / 4))
    for block in model.blocks:
        xavier = math.sqrt(2 / (64 + 64))
        close_std(block.self_attn.q_proj.weight, xavier)
        close_std(block.self_attn.k_proj.weight, xavier)
        close_std(block.self_attn.v_proj.weight, beta * xavier)
        close_std(block.self_attn.out_proj.weight, beta * xavier)
        close_std(block.fc1.weight, beta * math.sqrt(2 / (64 + 256)))
        close_std(block.fc2.weight, beta * math.sqrt(2 / (64 + 256)))
        assert torch.all(block.fc1.bias == 0)


def test_deepnet_packed_qkv_scales_only_the_value_third():
    model = Transformer(n_layer=4, n_embd=64, n_head=4, norm="post", naming="gpt2")
    report = schemes.deepnet(model, seed=0)
    assert report.preset == "nanogpt"
    beta = 32 ** (-1 / 4)
    w = model.blocks[0].attn.c_attn.weight.detach()
    xavier = math.sqrt(2 / (64 + 64))
    close_std(w[:64], xavier)
    close_std(w[64:128], xavier)
    close_std(w[128:], beta * xavier)


def test_deepnet_encoder_decoder_on_torch_transformer():
    model = torch.nn.Transformer(64, 4, num_encoder_layers=6, num_decoder_layers=3, dim_feedforward=128)
    report = schemes.deepnet(model, seed=0, architecture="encoder-decoder")
    assert report.preset == "torch"
    assert report.constants["encoder_layers"] == 6 and report.constants["decoder_layers"] == 3
    c = schemes.deepnorm_constants("encoder-decoder", encoder_layers=6, decoder_layers=3)
    close_std(model.encoder.layers[0].linear1.weight, c.encoder_beta * math.sqrt(2 / 192), rel=0.08)
    close_std(model.decoder.layers[0].linear2.weight, c.decoder_beta * math.sqrt(2 / 192), rel=0.08)
    v = model.decoder.layers[1].multihead_attn.in_proj_weight.detach()
    close_std(v[128:], c.decoder_beta * math.sqrt(2 / 128), rel=0.08)
    close_std(v[:64], math.sqrt(2 / 128), rel=0.08)


@pytest.mark.parametrize("n_layer", [3, 12])
def test_t_fixup_encoder(n_layer):
    d = 64
    model = Transformer(n_layer=n_layer, n_embd=d, n_head=4, norm="none", naming="fairseq", causal=False)
    report = schemes.t_fixup(model, seed=0, architecture="encoder")
    scale = 0.67 * n_layer ** (-1 / 4)
    assert report.constants["encoder"] == pytest.approx(scale)
    block = model.blocks[-1]
    close_std(block.self_attn.v_proj.weight, scale * math.sqrt(2 / (2 * d)))
    close_std(block.self_attn.q_proj.weight, math.sqrt(2 / (2 * d)))
    close_std(block.fc2.weight, scale * math.sqrt(2 / (5 * d)))
    close_std(model.embed_tokens.weight, d**-0.5 * (9 * n_layer) ** (-1 / 4), rel=0.1)
    # Xavier uniform: bounded by sqrt(3) std.
    bound = math.sqrt(3) * scale * math.sqrt(2 / (2 * d))
    assert float(block.self_attn.out_proj.weight.detach().abs().max()) <= bound * (1 + 1e-6)


def test_t_fixup_decoder_nanogpt_names():
    model = Transformer(n_layer=6, n_embd=64, n_head=4, norm="none")
    report = schemes.t_fixup(model, seed=0)
    scale = (9 * 6) ** (-1 / 4)
    assert report.constants["decoder"] == pytest.approx(scale)
    w = model.blocks[0].attn.c_attn.weight.detach()
    close_std(w[128:], scale * math.sqrt(2 / 128))
    close_std(w[:64], math.sqrt(2 / 128))
    close_std(model.transformer["wte"].weight, 64**-0.5 * scale, rel=0.1)


# ------------------------------------------------------------------------------- Fixup
@pytest.mark.parametrize("depth, m", [(4, 2), (16, 2), (10, 3)])
def test_fixup_on_residual_mlp(depth, m):
    model = ResidualMLP(in_features=16, width=128, depth=depth, branch_layers=m, out_features=10, fixup=True)
    report = schemes.fixup(model, seed=0)
    scale = depth ** (-1 / (2 * m - 2))
    assert report.constants["scale"] == pytest.approx(scale)
    for block in model.blocks:
        for layer in block.layers[:-1]:
            close_std(layer.weight, math.sqrt(2 / 128) * scale)
        assert torch.all(block.layers[-1].weight == 0)
        assert all(torch.all(getattr(block, f"bias{j}") == 0) for j in range(m + 1))
        assert torch.all(block.scale == 1)
    assert torch.all(model.head.weight == 0) and torch.all(model.head.bias == 0)
    close_std(model.stem.weight, math.sqrt(2 / 16))


def test_fixup_on_resnet_without_batchnorm():
    model = ResNet(blocks_per_stage=(2, 2), width=16, norm="none")
    report = schemes.fixup(model, seed=0)
    assert report.preset == "resnet" and report.constants["n_branches"] == 4
    close_std(model.layer1[0].conv1.weight, math.sqrt(2 / (16 * 9)) * 4 ** -0.5, rel=0.1)
    assert torch.all(model.layer2[1].conv2.weight == 0)
    assert torch.all(model.fc.weight == 0)
    assert torch.all(model.layer2[0].bias1a == 0) and torch.all(model.layer2[0].scale == 1)
    assert torch.all(model.bias1 == 0) and torch.all(model.bias2 == 0)
    close_std(model.layer2[0].downsample[0].weight, math.sqrt(2 / 16), rel=0.15)
    out = model(torch.randn(2, 3, 8, 8))
    assert torch.all(out == 0)  # zero classifier


# ------------------------------------------------------------------------------- muP
def test_mup_scales_with_width_relative_to_base():
    with torch.device("meta"):
        base = Transformer(n_embd=32, n_head=4, attention_scale="mup")
    stds = {}
    for width in (32, 128):
        model = Transformer(n_embd=width, n_head=4, attention_scale="mup")
        report = schemes.mup(model, base, seed=0, readout_init="scaled")
        stds[width] = {n: measured_std(p) for n, p in model.named_parameters()}
    assert report.parameters["transformer.h.0.attn.c_attn.weight"].role == "hidden"
    assert report.parameters["lm_head.weight"].role == "output"
    assert report.parameters["transformer.wte.weight"].role == "input"
    hidden = "transformer.h.0.mlp.c_fc.weight"
    assert stds[32][hidden] == pytest.approx(1 / math.sqrt(32), rel=0.06)
    assert stds[128][hidden] == pytest.approx(1 / math.sqrt(128), rel=0.06)
    assert stds[128]["lm_head.weight"] == pytest.approx(stds[32]["lm_head.weight"] / 4, rel=0.1)
    assert stds[128]["transformer.wte.weight"] == pytest.approx(1.0, rel=0.06)


def test_mup_param_groups_follow_adam_rules():
    base = ResidualMLP(width=16, depth=2)
    model = ResidualMLP(width=64, depth=2)
    report = schemes.mup(model, base, seed=0)
    groups = report.param_groups(model, 1e-3, "adam")
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert lr_of[id(model.blocks[0].layers[0].weight)] == pytest.approx(1e-3 / 4)
    assert lr_of[id(model.head.weight)] == pytest.approx(1e-3 / 4)
    assert lr_of[id(model.stem.weight)] == pytest.approx(1e-3)
    assert torch.all(model.head.weight == 0)
    optimizer = torch.optim.Adam(groups)
    assert len(optimizer.param_groups) == len(groups)


def test_mup_base_mismatch_is_clear():
    with pytest.raises(schemes.PresetError, match="base model has no parameters named"):
        schemes.mup(ResidualMLP(width=16, depth=3), ResidualMLP(width=8, depth=2))


# ------------------------------------------------------------------------------- LSUV
def test_lsuv_unit_variance_and_records():
    torch.manual_seed(0)
    model = ResidualMLP(in_features=16, width=64, depth=4, out_features=10)
    batch = torch.randn(128, 16)
    seen = []
    report = schemes.lsuv(model, batch, seed=0, tol=0.05, callback=seen.append)
    assert report.converged and [r.name for r in report.layers] == [r.name for r in seen]
    assert report.layers[0].name == "stem"
    assert report.layers[-1].name == "head"
    for record in report.layers:
        assert abs(record.variance - 1) < 0.05
    # Each layer's output measured afresh, after all layers are set.
    outputs = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: outputs.__setitem__(n, o))
             for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        model(batch)
    for h in hooks:
        h.remove()
    for name, out in outputs.items():
        assert abs(float(out.var()) - 1) < 0.05, name
    assert "iters" in report.table()


def test_lsuv_max_iter_caps_and_reports_non_convergence():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
    report = schemes.lsuv(model, torch.randn(64, 8) * 1000, seed=0, tol=1e-9, max_iter=1)
    assert all(r.iterations <= 1 for r in report.layers)


def test_lsuv_errors():
    model = ResidualMLP(width=8, depth=1)
    with pytest.raises(ValueError, match="tol"):
        schemes.lsuv(model, torch.randn(4, 16), tol=0)
    with pytest.raises(ValueError, match="max_iter"):
        schemes.lsuv(model, torch.randn(4, 16), max_iter=0)
    with pytest.raises(schemes.PresetError, match="no layers of types"):
        schemes.lsuv(torch.nn.Sequential(torch.nn.ReLU()), torch.randn(4, 16))


# ------------------------------------------------------------------------------- ZerO
def test_zero_on_residual_mlp_and_resnet():
    model = ResidualMLP(in_features=8, width=32, depth=3, branch_layers=2, out_features=5)
    schemes.zero(model)
    torch.testing.assert_close(model.stem.weight.detach(), torch.from_numpy(schemes.zero_matrix(32, 8)).float())
    assert torch.equal(model.blocks[0].layers[0].weight.detach(), torch.eye(32))
    assert torch.all(model.blocks[2].layers[1].weight == 0) and torch.all(model.head.weight == 0)
    resnet = ResNet(blocks_per_stage=(1, 1), width=8, norm="batch")
    report = schemes.zero(resnet)
    assert report.preset == "resnet"
    w = resnet.layer1[0].conv1.weight.detach()
    assert torch.equal(w[:, :, 1, 1], torch.eye(8)) and float(w[:, :, 0].abs().sum()) == 0
    shortcut = resnet.layer2[0].downsample[0].weight.detach()[:, :, 0, 0]
    torch.testing.assert_close(shortcut, torch.from_numpy(schemes.zero_matrix(16, 8)).float())


def test_zero_mlp_preset_every_layer_algorithm_1():
    model = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5))
    schemes.zero(model, preset="mlp")
    torch.testing.assert_close(model[0].weight.detach(), torch.from_numpy(schemes.zero_matrix(20, 10)).float())
    assert torch.equal(model[2].weight.detach(), torch.eye(5, 20))


# ------------------------------------------------------------------------------- every scheme
def _apply(scheme, model):
    if scheme == "lsuv":
        return schemes.lsuv(model, torch.randn(64, 16, generator=torch.Generator().manual_seed(1)), seed=5)
    if scheme == "mup":
        return schemes.mup(model, ResidualMLP(width=16, depth=3, fixup=True), seed=5)
    if scheme == "zero":
        return schemes.zero(model)
    return getattr(schemes, scheme)(model, seed=5)


@pytest.mark.parametrize("scheme", ["fixup", "lsuv", "mup", "zero"])
def test_idempotent_on_residual_mlp(scheme):
    model = ResidualMLP(width=32, depth=3, fixup=True)
    _apply(scheme, model)
    first = weights(model)
    _apply(scheme, model)
    for name, value in weights(model).items():
        torch.testing.assert_close(value, first[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("scheme", ["gpt2", "deepnet", "t_fixup"])
@pytest.mark.parametrize("naming", ["gpt2", "fairseq"])
def test_idempotent_and_keyed_on_transformers(scheme, naming):
    model = Transformer(n_layer=2, n_embd=32, n_head=4, naming=naming, norm="post")
    getattr(schemes, scheme)(model, seed=5)
    first = weights(model)
    getattr(schemes, scheme)(model, seed=5)
    for name, value in weights(model).items():
        torch.testing.assert_close(value, first[name], rtol=0, atol=0, msg=name)
    getattr(schemes, scheme)(model, seed=6)
    changed = weights(model)
    assert not torch.equal(changed[next(n for n in changed if n.endswith("fc.weight") or n.endswith("fc1.weight"))],
                           first[next(n for n in first if n.endswith("fc.weight") or n.endswith("fc1.weight"))])


def test_adding_a_layer_changes_no_other_parameter():
    small = Transformer(n_layer=2, n_embd=32, n_head=4)
    large = Transformer(n_layer=3, n_embd=32, n_head=4)
    schemes.deepnet(small, seed=0, decoder_layers=10)
    schemes.deepnet(large, seed=0, decoder_layers=10)
    big = dict(large.named_parameters())
    for name, p in small.named_parameters():
        torch.testing.assert_close(p.detach(), big[name].detach(), rtol=0, atol=0, msg=name)


def test_report_table_lists_constants_and_roles():
    report = schemes.fixup(ResidualMLP(width=16, depth=2, fixup=True), seed=0)
    lines = report.table().splitlines()
    assert lines[0] == "fixup (preset residual_mlp)"
    # Each table starts with its header and rule (issue 10: the constants were bare "key = value" lines).
    assert lines[1].split() == ["constant", "value"] and set(lines[2].replace(" ", "")) == {"-"}
    assert lines[3].split() == ["n_branches", "2"]
    at = lines.index(next(line for line in lines if line.split()[:1] == ["parameter"]))
    assert lines[at].split() == ["parameter", "role", "init", "std"] and lines[at - 1] == ""
    assert any(line.split()[:3] == ["blocks.0.layers.1.weight", "branch", "last"] for line in lines)
    assert "head.weight" in report.table()


def test_user_rules_cover_the_rest():
    model = Transformer(n_layer=2, n_embd=32, n_head=4, norm="post", naming="fairseq")
    schemes.deepnet(model, seed=0, rules={"*embed_tokens.weight": {"std": 0.5}})
    close_std(model.embed_tokens.weight, 0.5, rel=0.1)


# ------------------------------------------------------------------------------- errors
def test_preset_that_does_not_fit_names_what_it_searched_and_what_the_model_has():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    with pytest.raises(schemes.PresetError) as error:
        schemes.gpt2(model)
    message = str(error.value)
    assert "*.attn.c_proj.weight" in message and "0.weight" in message and "preset" in message
    with pytest.raises(schemes.PresetError, match=r"fc1"):
        schemes.deepnet(model)
    with pytest.raises(schemes.PresetError, match=r"blocks\.\*\.layers"):
        schemes.fixup(model)
    with pytest.raises(schemes.PresetError, match="lm_head"):
        schemes.mup(model, model)
    with pytest.raises(schemes.PresetError, match="layer"):
        schemes.zero(model)


def test_explicit_preset_that_does_not_fit():
    model = Transformer(n_layer=2, n_embd=32, n_head=4, naming="gpt2")
    with pytest.raises(schemes.PresetError, match="preset 'fairseq'"):
        schemes.gpt2(model, preset="fairseq")


def test_user_patterns_point_schemes_at_own_names():
    class Mine(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = torch.nn.Linear(8, 8)
            self.down = torch.nn.Linear(8, 8)
            self.out = torch.nn.Linear(8, 8)

    model = Mine()
    report = schemes.gpt2(model, residual=["down.weight", "out.weight"], seed=0)
    assert report.constants["n_layer"] == 1 and report.roles["down.weight"] == "residual"
    with pytest.raises(ValueError, match="odd number"):
        schemes.gpt2(model, residual="down.weight")
    assert schemes.gpt2(model, residual="down.weight", n_layer=4).constants["residual_std"] == pytest.approx(
        0.02 / math.sqrt(8)
    )


def test_bad_arguments():
    model = Transformer(n_layer=2, n_embd=32, n_head=4)
    with pytest.raises(ValueError, match="architecture"):
        schemes.deepnet(model, architecture="sideways")
    with pytest.raises(ValueError, match="needs decoder_layers"):
        schemes.deepnorm_constants("decoder")
    with pytest.raises(ValueError, match="preset"):
        schemes.gpt2(model, preset="gpt5")
    with pytest.raises(ValueError, match="std"):
        schemes.gpt2(model, std=-1)
    with pytest.raises(ValueError, match="n_layer"):
        schemes.gpt2_residual_std(0)
    with pytest.raises(ValueError, match="hadamard_scale"):
        schemes.zero_matrix(4, 2, hadamard_scale="big")
    with pytest.raises(ValueError, match="same number of dimensions"):
        schemes.mup_rules((4, 4), (4,))
    with pytest.raises(TypeError, match="pattern"):
        schemes.gpt2(model, residual=[1, 2])


def test_models_validate_arguments():
    with pytest.raises(ValueError, match="divisible"):
        Transformer(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="norm"):
        Transformer(norm="sandwich")
    with pytest.raises(ValueError, match="block_size"):
        Transformer(block_size=4)(torch.zeros(1, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="depth"):
        ResidualMLP(depth=0)


@pytest.mark.parametrize("scheme", ["gpt2", "deepnet", "t_fixup"])
def test_scheme_on_a_model_materialized_from_meta_matches_one_built_on_cpu(scheme):
    with torch.device("meta"):
        model = Transformer(n_layer=2, n_embd=32, n_head=4, norm="post")
    model = model.to_empty(device="cpu")
    getattr(schemes, scheme)(model, seed=9)
    reference = Transformer(n_layer=2, n_embd=32, n_head=4, norm="post")
    getattr(schemes, scheme)(reference, seed=9)
    expected = weights(reference)
    for name, value in weights(model).items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=name)


def test_lsuv_verbose_prints_progress(capsys):
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    schemes.lsuv(model, torch.randn(32, 8, generator=torch.Generator().manual_seed(0)), verbose=True)
    out = capsys.readouterr().out
    assert "lsuv 0:" in out and "lsuv 2:" in out


class Conv1D(torch.nn.Module):
    """Hugging Face GPT-2's linear layer: weight stored (in, out), y = x @ W + b."""

    def __init__(self, nf, nx):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(nx, nf))
        self.bias = torch.nn.Parameter(torch.ones(nf))


class HFBlock(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attn = torch.nn.Module()
        self.attn.c_attn, self.attn.c_proj = Conv1D(3 * d, d), Conv1D(d, d)
        self.mlp = torch.nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = Conv1D(4 * d, d), Conv1D(d, 4 * d)


def hf_gpt2(n_layer=4, d=64):
    model = torch.nn.Module()
    model.transformer = torch.nn.Module()
    model.transformer.wte = torch.nn.Embedding(100, d)
    model.transformer.h = torch.nn.ModuleList(HFBlock(d) for _ in range(n_layer))
    return model


def test_gpt2_and_deepnet_on_hugging_face_conv1d_names():
    model = hf_gpt2()
    report = schemes.gpt2(model, seed=0)
    assert report.preset == "nanogpt" and report.constants["n_layer"] == 4
    block = model.transformer.h[0]
    close_std(block.attn.c_attn.weight, 0.02)
    close_std(block.mlp.c_proj.weight, 0.02 / math.sqrt(8))
    assert torch.all(block.attn.c_attn.bias == 0)
    schemes.deepnet(model, seed=0)
    w = block.attn.c_attn.weight.detach()  # (d, 3d): q, k, v along the columns
    beta = 32 ** (-1 / 4)
    close_std(w[:, :64], math.sqrt(2 / 128))
    close_std(w[:, 128:], beta * math.sqrt(2 / 128))


def test_t_fixup_encoder_decoder_on_torch_transformer():
    model = torch.nn.Transformer(64, 4, num_encoder_layers=3, num_decoder_layers=5, dim_feedforward=128,
                                 batch_first=True)
    report = schemes.t_fixup(model, seed=0, architecture="encoder-decoder", distribution="normal")
    assert report.constants["encoder_layers"] == 3 and report.constants["decoder_layers"] == 5
    encoder_scale, decoder_scale = 0.67 * 3 ** (-1 / 4), (9 * 5) ** (-1 / 4)
    close_std(model.encoder.layers[0].linear1.weight, encoder_scale * math.sqrt(2 / 192), rel=0.08)
    cross = model.decoder.layers[0].multihead_attn.in_proj_weight.detach()
    close_std(cross[128:], decoder_scale * math.sqrt(2 / 128), rel=0.08)
    close_std(cross[64:128], math.sqrt(2 / 128), rel=0.08)
    close_std(model.decoder.layers[4].multihead_attn.out_proj.weight, decoder_scale * math.sqrt(2 / 128), rel=0.08)
    assert torch.all(model.decoder.layers[0].self_attn.in_proj_bias == 0)


def test_fixup_on_resnet_with_batchnorm_zeroes_the_last_conv_of_each_block():
    model = ResNet(blocks_per_stage=(1, 1), width=8, norm="batch")
    report = schemes.fixup(model, seed=0)
    assert report.constants["n_branches"] == 2
    assert torch.all(model.layer1[0].conv2.weight == 0) and torch.all(model.layer1[0].bn1.weight == 1)


# ------------------------------------------------------------------------------- roles and presets
def _mine():
    class Mine(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = torch.nn.Linear(8, 8)
            self.down = torch.nn.Linear(8, 8)

    return Mine()


def test_roles_mapping_and_keywords_are_the_same_patterns():
    by_keyword, by_roles, by_preset = _mine(), _mine(), _mine()
    schemes.gpt2(by_keyword, residual="down.weight", n_layer=3, seed=1)
    schemes.gpt2(by_roles, roles={"residual": ["down.weight"]}, n_layer=3, seed=1)
    report = schemes.gpt2(by_preset, preset=schemes.Preset("mine", {"residual": "down.weight"}), n_layer=3, seed=1)
    assert report.preset == "mine" and report.roles["down.weight"] == "residual"
    for model in (by_roles, by_preset):
        for name, value in weights(model).items():
            torch.testing.assert_close(value, weights(by_keyword)[name], rtol=0, atol=0, msg=name)


def test_unknown_or_doubled_role_names_the_roles():
    with pytest.raises(TypeError, match=r"residul.*\['residual'\]"):
        schemes.gpt2(_mine(), residul="down.weight")
    with pytest.raises(TypeError, match="twice"):
        schemes.gpt2(_mine(), roles={"residual": "up.weight"}, residual="down.weight")
    with pytest.raises(TypeError, match="roles must be a dict"):
        schemes.gpt2(_mine(), roles=["down.weight"])
    with pytest.raises(ValueError, match="not in"):
        schemes.RoleTable("x", roles=("a",), presets=(schemes.Preset("p", {"b": "*"}),))


def test_presets_for_models_without_a_required_role_are_only_taken_by_name():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    with pytest.raises(schemes.PresetError, match="readout"):
        schemes.mup(model, model)
    report = schemes.mup(model, model, preset="none", seed=0)
    assert report.preset == "none" and "output" not in report.roles.values()


def test_deepnorm_is_the_scheme_and_deepnet_its_alias():
    assert schemes.deepnet is schemes.deepnorm
    model = Transformer(n_layer=2, n_embd=32, n_head=4, norm="post", naming="fairseq")
    assert schemes.deepnorm(model, seed=0).scheme == "deepnorm"
    import berry.initializations

    # The seed's deepnet is a rule for one layer (He normal on the fan-out), not this scheme.
    assert berry.initializations.deepnet(fan_out=50) == pytest.approx(math.sqrt(2 / 50))


def test_every_scheme_has_its_presets_in_one_role_table():
    for table in (schemes._gpt2.GPT2_ROLES, schemes._fixup.FIXUP_ROLES, schemes._mup.MUP_ROLES,
                  schemes._zero.ZERO_ROLES, schemes._transformer.TRANSFORMER_ROLES):
        assert isinstance(table, schemes.RoleTable) and table.presets
    assert schemes.GPT2_PRESETS["nanogpt"]["residual"] == ("*.attn.c_proj.weight", "*.mlp.c_proj.weight")


# ------------------------------------------------------------------------------- one fan engine, one walk
class ConvBranches(torch.nn.Module):
    """A residual network whose branches use grouped and transposed convolutions."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = torch.nn.ModuleList(
            torch.nn.ModuleDict({"conv1": torch.nn.Conv2d(8, 16, 3, padding=1, groups=4),
                                 "conv2": torch.nn.ConvTranspose2d(16, 8, 3, padding=1, groups=2)})
            for _ in range(2)
        )
        self.fc = torch.nn.Linear(8, 10)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_fixup_takes_grouped_and_transposed_fans_from_init_model(mode):
    model = ConvBranches()
    report = schemes.fixup(model, seed=0, mode=mode, roles={"branch": "layer1.*.conv*.weight"})
    # init_model's own He rule on the same layers, with the fans berry.compute_fans gives for groups and
    # transposed convolutions ("he" uses the fan-in; the seed's "deepnet" rule is He on the fan-out).
    he = init_model(ConvBranches(), {"_ConvNd:weight": "he" if mode == "fan_in" else "deepnet"}, seed=0)
    fan = {"fan_in": 2 * 9, "fan_out": 4 * 9}[mode]  # Conv2d(8, 16, groups=4): (in/g) k, (out/g) k
    scale = schemes.fixup_scale(2, 2)
    assert report["layer1.0.conv1.weight"].std == pytest.approx(math.sqrt(2 / fan) * scale, rel=1e-12)
    assert report["layer1.0.conv1.weight"].std == pytest.approx(he["layer1.0.conv1.weight"].std * scale, rel=1e-12)
    assert report["stem.weight"].std == pytest.approx(he["stem.weight"].std, rel=1e-12)
    assert torch.all(model.layer1[1]["conv2"].weight == 0)


def test_mup_takes_a_transposed_convolutions_fan_in_from_its_layout():
    base = torch.nn.Sequential(torch.nn.ConvTranspose1d(8, 4, 3), torch.nn.Linear(4, 2))
    model = torch.nn.Sequential(torch.nn.ConvTranspose1d(32, 16, 3), torch.nn.Linear(4, 2))
    report = schemes.mup(model, base, seed=0, preset="none")
    first = report.parameters["0.weight"]  # weight (in, out, k): fan_in = in * k
    assert (first.role, first.fan_in_mult, first.fan_out_mult) == ("hidden", 4.0, 4.0)
    assert first.std == pytest.approx(1 / math.sqrt(8 * 3) / 2, rel=1e-12)


def test_zero_matrix_costs_memory_in_proportion_to_its_output():
    import tracemalloc

    out_features, in_features = 2**16 + 1, 64  # the old code built a 2^17 x 2^17 int64 Hadamard matrix: 128 GiB
    tracemalloc.start()
    try:
        matrix = schemes.zero_matrix(out_features, in_features)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert matrix.shape == (out_features, in_features)
    assert peak < matrix.nbytes + 8 * 2**20  # the output (32 MiB) and chunks of a few MiB
    # Rows far down are still the Sylvester entries (-1)^popcount(i & j), scaled.
    c = 2 ** (-16 / 2)
    rows = np.arange(out_features - 3, out_features)
    expected = [[c * (-1) ** bin(i & j).count("1") for j in range(in_features)] for i in rows]
    np.testing.assert_array_equal(matrix[rows], expected)


def test_zero_on_a_wide_head_fills_it_in_chunks_equal_to_zero_matrix():
    model = torch.nn.Sequential(torch.nn.Linear(64, 3000), torch.nn.ReLU(), torch.nn.Linear(3000, 3000))
    schemes.zero(model, preset="mlp")
    np.testing.assert_array_equal(model[0].weight.detach().double().numpy(),
                                  schemes.zero_matrix(3000, 64).astype(np.float32))


def test_schemes_and_init_model_name_parameters_through_one_walk():
    from torch.nn.utils import parametrizations

    model = Transformer(n_layer=2, n_embd=32, n_head=4)
    parametrizations.weight_norm(model.blocks[0].mlp.c_proj)
    report = schemes.gpt2(model, seed=3)
    name = "transformer.h.0.mlp.c_proj.weight"
    assert report.roles[name] == "residual" and report[name].std == pytest.approx(0.02 / 2)
    expected = init.normal_(torch.empty(32, 128), 0.0, 0.01, seed=3, name=name)
    torch.testing.assert_close(model.blocks[0].mlp.c_proj.weight.detach(), expected, rtol=1e-6, atol=1e-8)


def test_lsuv_rescales_weight_normed_layers_through_their_magnitudes():
    from torch.nn.utils import parametrizations

    model = torch.nn.Sequential(parametrizations.weight_norm(torch.nn.Linear(16, 32)), torch.nn.Tanh(),
                                torch.nn.Linear(32, 8))
    batch = torch.randn(256, 16, generator=torch.Generator().manual_seed(0))
    report = schemes.lsuv(model, batch, seed=0, tol=0.05)
    assert report.converged
    with torch.no_grad():
        assert abs(float(model[0](batch).var()) - 1) < 0.05
    spectral = torch.nn.Sequential(parametrizations.spectral_norm(torch.nn.Linear(16, 8)))
    with pytest.raises(ValueError, match="spectrally normalized"):
        schemes.lsuv(spectral, batch * 100, seed=0)


@pytest.mark.parametrize("width", [64, 256, 1024])
def test_mup_agrees_with_the_mup_package(width):
    """Against Microsoft's mup (1.0.0; not a dependency: skipped where it is not installed)."""
    mup = pytest.importorskip("mup")

    def net(width, readout):
        model = torch.nn.Module()
        model.stem, model.hidden, model.head = torch.nn.Linear(8, width), torch.nn.Linear(width, width), readout(width, 10)
        return model

    torch.manual_seed(0)
    theirs = net(width, mup.MuReadout)
    mup.set_base_shapes(theirs, net(32, mup.MuReadout), delta=net(64, mup.MuReadout))
    ours = net(width, torch.nn.Linear)
    report = schemes.mup(ours, net(32, torch.nn.Linear), seed=0, readout_init="scaled", roles={"readout": "head.weight"})
    # Adam learning rates: MuAdam divides hidden (matrix-like) weights' by the width multiplier, as berry does.
    their_lr = {id(p): g["lr"] for g in mup.MuAdam(theirs.parameters(), lr=1.0).param_groups for p in g["params"]}
    our_lr = {id(p): g["lr"] for g in report.param_groups(ours, 1.0, "adam") for p in g["params"]}
    for name in ("stem.weight", "hidden.weight"):
        assert our_lr[id(ours.get_parameter(name))] == their_lr[id(theirs.get_parameter(name))], name
    # Initial stds: mup keeps torch's uniform init (std 1/sqrt(3 fan_in)) for hidden weights and makes the
    # readout's effective weight (MuReadout multiplies its output by 1/width_mult) scale as 1/width: the same
    # rules as berry's N(0, 1/fan_in) and sigma_0 / r, up to torch's 1/sqrt(3).
    assert measured_std(theirs.hidden.weight) * math.sqrt(3) == pytest.approx(report["hidden.weight"].std, rel=0.06)
    effective = theirs.head.weight.detach() * theirs.head.output_mult / theirs.head.width_mult()
    assert measured_std(effective) * math.sqrt(3) == pytest.approx(report["head.weight"].std, rel=0.15)


def test_the_preset_error_transcript_in_the_docs_is_what_berry_says():
    import pathlib

    docs = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "schemes.md").read_text(encoding="utf-8")
    transcript = next(line for line in docs.splitlines() if line.startswith("gpt2: cannot find"))
    with pytest.raises(schemes.PresetError) as error:
        schemes.gpt2(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)))
    assert str(error.value) == transcript

"""auto_init's contract: rules reproduce the weights bit for bit, meta planning, inline activations, reports."""

from __future__ import annotations

import json
import math
import re
import warnings

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import berry.torch as bt  # noqa: E402
from berry.gains import gain  # noqa: E402
from berry.torch import init_model  # noqa: E402
from berry.torch.auto import (  # noqa: E402
    AutoInitCheckError,
    DataDependentError,
    InputSpec,
    auto_init,
    auto_plan,
    before_after,
    default_rules_for,
    parse_input,
)
from berry.torch.auto.zoo import GPT, build  # noqa: E402


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("name", ["gpt", "resnet18_bn", "lstm_lm", "transformer_post_ln"])
def test_rules_reproduce_the_weights_bit_for_bit(name):
    model, inputs = build(name)
    report = auto_init(model, *inputs, seed=11, measure=False)
    expected = _state(model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()
    rules = json.loads(json.dumps(report.rules))  # as it would come back from a config file
    init_model(model, rules, seed=11, strict=True)
    for key, value in _state(model).items():
        assert torch.equal(value, expected[key]), key


def test_plan_on_meta_then_materialize_and_apply_equals_auto_init():
    with torch.device("meta"):
        meta = GPT(vocab=200, block=16, layers=2, d=32, heads=4)
    report = auto_plan(meta, InputSpec((4, 16), dtype=torch.long), seed=5)
    assert report.recorded_on == "meta" and not report.applied
    meta.to_empty(device="cpu")
    meta.lm_head.weight = meta.transformer["wte"].weight  # to_empty unties; re-tie as nanoGPT's recipe does
    report.apply(meta)

    torch.manual_seed(0)
    real = GPT(vocab=200, block=16, layers=2, d=32, heads=4)
    auto_init(real, InputSpec((4, 16), dtype=torch.long), seed=5)
    for (name, a), (_, b) in zip(meta.named_parameters(), real.named_parameters(), strict=True):
        assert torch.equal(a, b), name


def test_plan_needs_no_memory_beyond_the_model():
    with torch.device("meta"):
        model = GPT(vocab=50257, block=1024, layers=2, d=768, heads=12)
    report = auto_plan(model, InputSpec((1, 1024), dtype=torch.long))
    assert all(p.is_meta for p in model.parameters())  # nothing was materialized
    assert report["transformer.wte.weight"].tie == "lm_head.weight"


# --------------------------------------------------------------------------------------- inline activations
class Inline(nn.Module):
    def __init__(self, activation):
        super().__init__()
        self.first, self.second, self.activation = nn.Linear(128, 128), nn.Linear(128, 64), activation

    def forward(self, x):
        return self.second(self.activation(self.first(x)))


@pytest.mark.parametrize(("activation", "name"), [
    (lambda x: x * torch.sigmoid(1.702 * x), "quick_gelu"),
    (lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0))), "gelu"),
    (lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3)))), "gelu_tanh"),
    (F.silu, "silu"),
    (lambda x: F.relu(x) ** 2, "squared_relu"),
    (torch.tanh, "tanh"),
    (lambda x: F.leaky_relu(x, 0.2), ("leaky_relu", 0.2)),
])
def test_inline_activation_is_integrated_as_one_function(activation, name):
    model = Inline(activation)
    x = InputSpec((64, 128))
    report = auto_plan(model, x)
    named, param = (name, None) if isinstance(name, str) else name
    expected = gain(named, param) / math.sqrt(128)  # unit second moment after the activation at q = 1
    assert math.isclose(report["second.weight"].init["std"], expected, rel_tol=1e-9)


def test_inline_quick_gelu_is_named_as_its_ops():
    report = auto_plan(Inline(lambda x: x * torch.sigmoid(1.702 * x)), InputSpec((8, 128)))
    assert report["first.weight"].feeds == "(mul -> sigmoid -> mul)"
    assert report["first.weight"].feeds != "sigmoid"


class GLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1, self.w3, self.w2 = nn.Linear(64, 96, bias=False), nn.Linear(64, 96, bias=False), \
            nn.Linear(96, 64, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def test_swiglu_product_of_independent_chains():
    report = auto_plan(GLU(), InputSpec((32, 64)))
    silu_second = 1.0 / gain("silu") ** 2  # E[silu(z)^2]
    assert math.isclose(report["w2.weight"].init["std"], 1.0 / math.sqrt(96 * silu_second * 1.0), rel_tol=1e-9)


# --------------------------------------------------------------------------------------- convolutions, fans
class Convs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.depthwise = nn.Conv2d(16, 16, 5, padding=2, groups=16)
        self.up = nn.ConvTranspose2d(16, 32, 4, stride=2, padding=1)
        self.grouped = nn.Conv2d(32, 32, 3, padding=1, groups=4)

    def forward(self, x):
        return self.grouped(F.relu(self.up(F.relu(self.depthwise(F.relu(self.conv(x)))))))


def test_convolutions_of_every_kind_predict_their_output():
    torch.manual_seed(0)
    model = Convs()
    x = torch.randn(32, 3, 16, 16, generator=_gen())
    report = auto_init(model, x, measure=False)
    outputs = {}
    handles = [m.register_forward_hook(lambda mod, a, o, n=n: outputs.__setitem__(n, float(o.std())))
               for n, m in model.named_children()]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    for name in ("conv", "depthwise", "up", "grouped"):
        assert outputs[name] == pytest.approx(report[f"{name}.weight"].predicted_std, rel=0.2), name
    # a 5x5 depthwise kernel sees 25 inputs inside the image, fewer at its border (padding 2 on 16x16)
    assert 20 < report["depthwise.weight"].fan_in < 25


# --------------------------------------------------------------------------------------- what it does not know
class Unknown(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.out = nn.Linear(16, 32), nn.Linear(32, 8)
        self.generator = nn.Parameter(torch.zeros(32, 32))

    def forward(self, x):
        h = torch.cumsum(self.inp(x), dim=-1)  # an op berry does not model
        return self.out(h @ torch.linalg.matrix_exp(self.generator))  # a weight made by an unknown op


def test_unknown_ops_are_listed_and_their_parameters_kept():
    model = Unknown()
    before = model.generator.detach().clone()
    report = auto_init(model, torch.randn(64, 16, generator=_gen()), measure=False)
    ops = {item["op"] for item in report.not_understood}
    assert "cumsum" in ops
    assert report["generator"].role == "kept" and report.rules["generator"] == "keep"
    assert torch.equal(model.generator, before)
    assert any("cumsum" in note for note in report.notes)


def test_check_raises_where_the_measurement_leaves_the_band_and_measured_refinement_fixes_it():
    torch.manual_seed(0)
    model = Unknown()
    x = torch.randn(256, 16, generator=_gen())
    report = auto_init(model, x)  # real inputs: measured columns filled
    assert report.measured
    with pytest.raises(AutoInitCheckError, match=r"out\.weight"):
        report.check()
    refined = auto_init(model, x, measured=True)
    assert refined["out.weight"].refined is not None and refined["out.weight"].refined < 0.5
    refined.check(band=(0.8, 1.25), grad_band=(1e-3, 1e3))
    state = _state(model)
    init_model(model, refined.rules, seed=refined.seed)
    for key, value in _state(model).items():
        assert torch.equal(value, state[key]), key


# --------------------------------------------------------------------------------------- implausible predictions
class Scan(nn.Module):
    """A selective scan written as Mamba's slow path: ``exp(A * softplus(dt))`` with ``A = -exp(A_log)``, then a
    recurrence. The unknown scalar A makes the decay's predicted second moment above 1, so the recurrence's
    predicted second moment grows geometrically (about 1e12 here) while the real one stays near 30."""

    def __init__(self, d: int = 16, n: int = 8):
        super().__init__()
        self.inp, self.dt, self.out, self.head = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, 4)
        self.a_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(d, 1))

    def forward(self, x):
        h = self.inp(x).transpose(1, 2)
        dt = F.softplus(self.dt(x) + 2.0).transpose(1, 2)
        a = -torch.exp(self.a_log.float())
        decay = torch.exp(a[None, :, None, :] * dt[:, :, :, None])
        state = h.new_zeros(x.shape[0], a.shape[0], a.shape[1])
        ys = []
        for t in range(x.shape[1]):
            state = decay[:, :, t, :] * state + h[:, :, t, None]
            ys.append(state.sum(-1))
        stream = x + self.out(torch.stack(ys, -1).transpose(1, 2))
        return self.head(stream)  # no norm before the head: an error in the stream would reach its scale


def _scan() -> nn.Module:
    torch.manual_seed(7)
    return Scan()


def test_a_weight_whose_input_prediction_is_implausible_is_kept_listed_and_does_not_spread():
    model, x = _scan(), torch.randn(4, 16, 16, generator=_gen())
    made = _state(model)
    report = auto_init(model, x, seed=3)
    # out's input is predicted far outside [1e-6, 1e6]: no scale is derived from it (it used to get std 3e-7)
    for name in ("out.weight", "out.bias"):
        assert report[name].role == "kept" and report.rules[name] == "keep", report.table()
        assert torch.equal(model.state_dict()[name], made[name])
    assert "outside [1e-06, 1e+06] x the target 1" in report["out.weight"].reason
    listed = [item for item in report.not_understood if item["module"] == "out"]
    assert len(listed) == 1 and listed[0]["op"] == "linear"
    assert "input second moment predicted as" in listed[0]["reason"] and "out.weight and its bias kept" in \
        listed[0]["reason"]
    assert any(note.startswith("linear in out:") and "taken to have the target second moment" in note
               for note in report.notes)
    assert "not understood: linear in out: input second moment predicted as" in report.table()
    # downstream: the propagation continues from out's target, so the head reading the stream gets a sane scale
    (stream,) = report.streams  # x + out(y): the input's second moment plus out's target (the stream's)
    assert stream["q_out"] == pytest.approx(2 * stream["q_in"]), report.streams
    head = report["head.weight"]
    assert head.init["std"] == pytest.approx(math.sqrt(1.0 / (16 * stream["q_out"])), rel=1e-6)
    outputs: dict[str, float] = {}
    handles = [getattr(model, n).register_forward_hook(
        lambda m, i, o, n=n: outputs.__setitem__(n, float(o.detach().double().std()))) for n in ("out", "head")]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    assert outputs["out"] > 0.3  # the branch contributes (the derived scale left it at 1e-6)
    assert 0.1 < outputs["head"] / head.predicted_std < 10.0
    assert head.predicted_grad is not None and math.isfinite(head.predicted_grad)
    assert report["inp.weight"].predicted_grad is None  # no gradient prediction through the untrusted op
    # the rules reproduce the weights bit for bit: kept parameters as the fresh model makes them
    fresh = _scan()
    init_model(fresh, report.rules, seed=report.seed)
    for key, value in _state(model).items():
        assert torch.equal(value, _state(fresh)[key]), key


class Extremes(nn.Module):
    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.inp, self.mid, self.out = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 8)

    def forward(self, x):
        h = self.inp(x)
        if self.how == "exploded":  # exp of a wide Gaussian: E = e^18 = 6.6e7, far above any finite sample
            h = torch.exp(3.0 * h)
        else:  # a chain that vanished: relu(N(-12, 1)) has second moment 1e-34
            h = torch.relu(h - 12.0)
        return self.out(torch.tanh(self.mid(h)))


@pytest.mark.parametrize("how", ["exploded", "vanished"])
def test_an_astronomical_prediction_either_way_keeps_the_weight(how):
    torch.manual_seed(0)
    model = Extremes(how)
    report = auto_init(model, torch.randn(64, 16, generator=_gen()), measure=False)
    assert report.rules["mid.weight"] == "keep" and report.rules["mid.bias"] == "keep"
    q = float(report["mid.weight"].reason.split("predicted as ")[1].split(",")[0])
    assert (q > 1e6) if how == "exploded" else (q < 1e-6)
    assert [item["module"] for item in report.not_understood] == ["mid"]
    # after it: the target again, so the output layer is chosen as usual (tanh of unit second moment)
    assert report["out.weight"].role == "weight" and "input second moment 0.39" in report["out.weight"].reason


def test_measured_example_inputs_are_trusted_at_any_scale():
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    x = 1e4 * torch.randn(64, 16, generator=_gen())  # raw features: second moment 1e8, measured, not predicted
    report = auto_init(model, x, measure=False)
    assert report.not_understood == ()
    assert report["0.weight"].role == "weight"
    assert report["0.weight"].init["std"] == pytest.approx(1.0 / math.sqrt(16 * float((x.double() ** 2).mean())))


# --------------------------------------------------------------------------------------- flows and inputs
class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        return self.a(x) if float(x.sum()) > 0 else self.b(x)


def test_data_dependent_forward_on_a_meta_model_says_what_to_do():
    with torch.device("meta"):
        model = Branchy()
    with pytest.raises(DataDependentError, match="materialized"):
        auto_plan(model, InputSpec((4, 8)))


def test_without_inputs_the_first_layer_tells_the_shape_and_the_report_says_so():
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    report = auto_init(model)
    assert "inferred from the first layer 0" in report.inputs
    assert report["2.weight"].init["std"] == pytest.approx(math.sqrt(2.0 / 30.0), rel=1e-9)
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    assert "spatial size 32 assumed" in auto_plan(conv).inputs


def test_bare_shapes_and_specs_are_standardized_inputs():
    model = nn.Sequential(nn.Linear(10, 10))
    by_shape = auto_plan(model, (4, 10)).rules
    by_spec = auto_plan(model, InputSpec((4, 10))).rules
    assert by_shape == by_spec == {"0.weight": {"std": pytest.approx(1 / math.sqrt(10))}, "0.bias": "zeros"}
    scaled = auto_plan(model, InputSpec((4, 10), std=2.0)).rules["0.weight"]["std"]
    assert scaled == pytest.approx(0.5 / math.sqrt(10))


def test_default_rules_for_is_the_structural_plan():
    model = nn.Sequential(*[layer for _ in range(10) for layer in (nn.Linear(64, 64), nn.ReLU())])
    rules = default_rules_for(model)
    assert rules is not None and rules["2.weight"]["std"] == pytest.approx(math.sqrt(2 / 64))
    assert default_rules_for(nn.Sequential(nn.Flatten(), nn.Softmax(-1))) is None


# --------------------------------------------------------------------------------------- options
def test_residual_schemes_change_the_branch_scale_as_stated():
    model, inputs = build("residual_mlp")
    plans = {scheme: auto_plan(model, *inputs, residual=scheme) for scheme in
             ("auto", "gpt2", "none", "fixup", "deepnorm", "t-fixup")}
    knob = "blocks.3.2.weight"
    auto, none = plans["auto"][knob], plans["none"][knob]
    assert plans["gpt2"][knob].init == auto.init  # c = 1 over L branches is GPT-2's 1/sqrt(2N)
    assert none.init["std"] == pytest.approx(auto.init["std"] * math.sqrt(16), rel=1e-6)
    assert plans["fixup"][knob].init == "zeros"
    from berry.torch import schemes

    beta = schemes.deepnorm_constants("encoder", encoder_layers=8).encoder_beta
    assert plans["deepnorm"][knob].init["std"] == pytest.approx(none.init["std"] * beta**2, rel=1e-6)


def test_mup_zeroes_queries_and_shrinks_the_readout():
    model, inputs = build("swiglu")
    report = auto_plan(model, *inputs, mup=True)
    assert report["layers.0.wq.weight"].init == "zeros"
    assert report["layers.0.wk.weight"].init != "zeros"
    assert report["output.weight"].init["std"] == pytest.approx(1 / 64)


def test_bad_options_name_the_argument():
    model = nn.Linear(4, 4)
    with pytest.raises(ValueError, match="residual"):
        auto_plan(model, (2, 4), residual="gpt3")
    with pytest.raises(ValueError, match="logit_std"):
        auto_plan(model, (2, 4), logit_std=-1.0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        auto_plan(model, (2, 4), taget=1.0)
    with pytest.raises(ValueError, match="seed"):
        auto_plan(model, (2, 4), seed=-1)
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        auto_plan("model", (2, 4))
    with pytest.raises(ValueError, match="real example inputs"):
        auto_init(model, InputSpec((2, 4)), measured=True)



@pytest.mark.parametrize("option", ["critical", "mup", "on_meta", "measured", "measure"])
@pytest.mark.parametrize("value", ["no", 0, 1])
def test_boolean_options_take_bools_not_their_truth(option, value):
    # critical="no" was taken by its truth: the critical stack was planned; strings and numbers are refused
    with pytest.raises(TypeError, match=rf"{option} must be True(, False or None| or False), got {value!r}"):
        auto_init(nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)), torch.randn(2, 4), **{option: value})


def test_unknown_options_and_kwargs_say_what_is_allowed():
    with pytest.raises(TypeError, match=r"targt=2\.0; the options are target, residual.*Did you mean 'target'"):
        auto_plan(nn.Linear(4, 4), (2, 4), targt=2.0)
    with pytest.raises(TypeError, match=r"example_kwargs must be a dict .* got list"):
        auto_plan(nn.Linear(4, 4), (2, 4), example_kwargs=[("mask", None)])


@pytest.mark.parametrize("value", [0.0, float("nan"), float("inf")])
def test_an_example_input_without_a_usable_second_moment_is_named(value):
    # zeros planned std 1e150 (auto_init then failed in the sampler); nan and inf failed inside a quadrature
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    with pytest.raises(ValueError, match=r"example input args\[0\] read by 0\.weight has second moment"):
        auto_plan(model, torch.full((4, 8), value))


def test_a_non_finite_input_that_reaches_a_scale_indirectly_is_explained():
    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.proj(x) + mask, -1)

    mask = torch.zeros(4, 4)
    mask[:, 0] = float("-inf")
    with pytest.raises(ValueError, match=r"cannot choose a scale for proj\.weight: .* gives std inf.*meta tensor"):
        auto_plan(Masked(), torch.randn(4, 8, generator=_gen()), mask)  # was: "rule 'proj.weight': std must be ..."
    assert "proj.weight" in auto_plan(Masked(), torch.randn(4, 8, generator=_gen()), mask.to("meta")).rules


def test_an_empty_example_tensor_is_not_measured():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    report = auto_init(model, torch.randn(0, 8))  # was measured: nan columns, and check() failed on "nan is nanx"
    assert not report.measured and report.parameters[0].measured_std is None
    report.check()
    with pytest.raises(ValueError, match="non-empty"):
        auto_init(model, torch.randn(0, 8), measure=True)


@pytest.mark.parametrize("text", ["0x8", "8x0", "8xx8", "8x"])
def test_parse_input_refuses_empty_dimensions(text):
    with pytest.raises(ValueError, match=rf"input shape {text!r} must"):
        parse_input(text)


# --------------------------------------------------------------------------------------- the report
def test_report_table_dict_and_json():
    model, inputs = build("gpt")
    report = auto_init(model, *inputs)
    table = report.table()
    for column in ("parameter", "init", "fan_in", "feeds", "residual", "std pred", "grad pred", "std meas"):
        assert column in table.splitlines()[0]
    assert "branch 12/12 of stream 0" in table and "tied with lm_head.weight" in table
    data = json.loads(report.to_json())
    assert data["rules"] == json.loads(json.dumps(report.rules))
    assert {row["name"] for row in data["parameters"]} == {n for n, _ in model.named_parameters()}
    assert data["streams"][0]["additions"] == 12
    report.check()  # a well-initialized model passes its own bands


def test_blocks_report_chi():
    model, inputs = build("transformer_pre_ln")
    report = auto_plan(model, *inputs)
    assert len(report.blocks) == 6
    assert all(0.5 < block.chi < 2.0 for block in report.blocks)
    mlp, mlp_inputs = build("mlp_tanh")
    stacks = auto_plan(mlp, *mlp_inputs).stacks
    assert stacks[0]["chi"] == pytest.approx(1.0, abs=1e-9) and stacks[0]["bias_var"] > 0.1


def test_exported_from_berry_torch():
    assert bt.auto_init is auto_init and bt.auto_plan is auto_plan
    assert "auto_init" in bt.__all__


def test_token_id_specs_are_drawn_over_the_models_vocabulary():
    # InputSpec promises token ids uniform over the vocabulary of the embedding that reads them
    model = torch.nn.Sequential(torch.nn.Embedding(1000, 8), torch.nn.Linear(8, 8))
    seen = []
    model[0].register_forward_hook(lambda module, args, output: None if args[0].is_meta else seen.append(args[0]))
    before_after(model, parse_input("4x128:long"), seed=0)
    assert seen and all(int(ids.max()) > 900 and int(ids.min()) >= 0 for ids in seen)


def test_a_complex_example_input_is_measured_by_its_modulus_without_a_warning():
    # Casting to float64 dropped the imaginary part (rms 0.72 for a complex standard normal) and leaked
    # torch's "Casting complex values to real" warning from berry's internals.
    model = nn.Linear(8, 4, dtype=torch.cfloat)
    kept = model.weight.detach().clone()
    x = torch.randn(4096, 8, dtype=torch.cfloat, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = auto_init(model, x, seed=0)
    assert re.search(r"rms (0\.99\d|1\.0\d); complex", report.inputs), report.inputs  # E|z|^2 = 1
    assert report.rules["weight"] == "keep" and torch.equal(model.weight, kept)  # complex weights: not modelled

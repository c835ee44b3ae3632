"""berry.probe held to the theory of signal propagation, with fixed seeds.

The claims tested are those of the seed (too-large weights explode, too-small vanish) made precise by
He et al. 2015, Poole et al. 2016, Schoenholz et al. 2017, Klambauer et al. 2017 and Hanin & Rolnick 2018.
"""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pytest

from berry import probe
from berry.activations import get_activation
from berry.probe import BAND, Verdict, judge, mean_field, runner
from berry.probe.network import Network, WeightSource
from berry.sampling import sample


def _rms(network: probe.NetworkProbe) -> np.ndarray:
    """Root mean square of each layer's activations: the std with the mean put back."""
    return np.sqrt(network.series("act_std") ** 2 + network.series("act_mean") ** 2)


# --- the theory ---------------------------------------------------------------------------------


def test_relu_with_he_or_deepnet_stays_stable_60_layers_deep():
    # He et al. 2015: variance 2/fan keeps E[x^2] constant through ReLU layers (fan_in = fan_out here). A finite
    # network fluctuates around that: log(|x_L|^2 / |x_0|^2) is close to N(-5 beta / 2, 5 beta), beta = depth /
    # width (Hanin & Nica 2019, "Products of many large random matrices and gradients in deep neural networks"),
    # so the rms stays within exp(5 beta / 4 + 4 sqrt(5 beta) / 2) of its start, four standard deviations.
    depth, width = 60, 1024
    beta = depth / width
    band = math.exp(5 * beta / 4 + 2 * math.sqrt(5 * beta))  # 3.2 here; Xavier's rms falls by 2**-30
    report = probe.run(["he", "deepnet"], depth=depth, width=width, batch_size=16, seed=0)
    for network in report:
        assert network.verdict.kind == "stable", network.verdict
        relative = _rms(network) / network.input_std
        assert 1 / band < relative.min() and relative.max() < band, (relative.min(), relative.max())
        outputs = network.series("output_std")
        assert np.all((outputs / outputs[0] > 1 / band) & (outputs / outputs[0] < band))
        grads = network.series("grad_std")
        assert np.all((grads / grads[-1] > 1 / band) & (grads / grads[-1] < band))


def test_relu_with_xavier_vanishes():
    # Xavier's variance 1/fan is half what ReLU needs: the std shrinks by sqrt(2) per layer, so it leaves
    # the band after log(10)/log(sqrt(2)) = 6.6 layers, and by 2**-25 after 50.
    network = probe.run("xavier", depth=50, width=256, seed=0)["xavier"]
    assert network.verdict.kind == "vanishing"
    assert network.verdict.direction == "forward"
    assert 6 <= network.verdict.layer <= 10
    preact = network.series("output_std")
    assert preact[-1] / preact[0] < 1e-6
    assert network.backward.kind == "vanishing"


def test_tanh_with_xavier_stays_bounded_while_tanh_with_he_saturates():
    # Poole et al. 2016, Schoenholz et al. 2017. With sigma_w^2 = 1 (Xavier on square layers) tanh sits at the
    # edge of chaos: q_l ~ 1/(2l) decays only polynomially, no unit saturates, and chi = E[tanh'^2] <= 1
    # never lets the gradients grow. With sigma_w^2 = 2 (He) the pre-activations settle at q* ~ 0.62, a few
    # percent of the entries sit where tanh' < 0.1 (|tanh| > 0.95: "saturated"), and
    # chi = 2 E[tanh'^2] ~ 1.1 > 1: the chaotic phase, where gradients grow by sqrt(chi) per layer backward.
    report = probe.run(["xavier", "he"], depth=100, width=256, activation="tanh", seed=0)
    xavier, he = report["xavier"], report["he"]

    assert xavier.verdict.kind != "overflow" and xavier.backward.kind != "exploding"
    assert np.all(xavier.series("act_std") <= 1.0)
    assert xavier.series("output_std")[-1] > 0.03  # polynomial decay (mean field: 1/sqrt(201) = 0.07)
    grads = xavier.series("grad_std")
    assert np.max(grads / grads[-1]) <= 1.05
    assert np.max(xavier.series("saturated_fraction")[10:]) < 1e-3  # the input itself has |x| > 1.8 at times

    deep_saturation = np.mean(he.series("saturated_fraction")[-10:])
    assert deep_saturation > 0.01
    assert deep_saturation > 20 * max(np.mean(xavier.series("saturated_fraction")[-10:]), 1e-4)
    assert he.forward.kind == "stable"
    assert he.backward.kind == "exploding"
    assert he.series("grad_std")[0] / he.series("grad_std")[-1] > BAND


def test_linear_with_lecun_is_stable():
    network = probe.run("lecun", depth=100, width=256, activation="linear", seed=0)["lecun"]
    assert network.verdict.kind == "stable"
    relative = network.series("output_std") / network.input_std
    assert relative.min() > 0.5 and relative.max() < 2.0


def test_selu_with_lecun_self_normalizes():
    # Klambauer et al. 2017: with variance 1/fan_in, (mean 0, variance 1) is an attracting fixed point.
    network = probe.run("lecun", depth=100, width=256, activation="selu", seed=0)["lecun"]
    assert network.forward.kind == "stable"
    assert np.max(np.abs(network.series("act_mean"))) < 0.1
    stds = network.series("act_std")
    assert stds.min() > 0.85 and stds.max() < 1.15
    theory = mean_field("selu", [1.0] * 100)
    assert abs(theory.act_mean[-1]) < 1e-6 and abs(theory.act_second_moment[-1] - 1) < 1e-6


def test_residual_mlp_explodes_without_branch_scaling_and_not_with_it():
    # Each unscaled ReLU/He block doubles the stream's variance; with alpha = 1/sqrt(depth) the growth is
    # (1 + 1/depth)^depth < e in variance (Hanin & Rolnick 2018).
    depth = 50
    unscaled = probe.run("he", depth=depth, width=256, residual=True, seed=0)["he"]
    assert unscaled.verdict.kind in ("exploding", "overflow")
    assert unscaled.forward.layer is not None and unscaled.forward.layer <= 10
    scaled = probe.run("he", depth=depth, width=256, residual=True, branch_scale=1 / math.sqrt(depth), seed=0)["he"]
    assert scaled.verdict.kind == "stable"
    stream = scaled.series("output_std") / scaled.input_std
    assert stream.max() < math.sqrt(math.e) * 1.2
    deeper = probe.run("he", depth=10, width=256, residual=True, seed=0)["he"]
    assert deeper.series("output_std")[-1] < unscaled.series("output_std")[-1] / 1e4  # it grows with depth


@pytest.mark.parametrize(
    ("activation", "init", "depth", "options"),
    [
        ("relu", "he", 10, {}),
        ("tanh", "xavier", 15, {}),
        ("tanh", "he", 15, {}),
        ("selu", "lecun", 15, {}),
        ("gelu", "he", 6, {}),
        ("relu", "he", 15, {"residual": True, "branch_scale": 0.25}),
    ],
)
def test_mean_field_agrees_with_the_measurement_within_10_percent_at_width_1024(activation, init, depth, options):
    network = probe.run(init, depth=depth, width=1024, batch_size=16, activation=activation, seed=0,
                        **options)[init]
    forward = network.series("output_std") / network.series("mean_field_std")
    backward = network.series("grad_std") / network.series("mean_field_grad_std")
    assert np.all(np.abs(forward - 1) < 0.10), forward
    assert np.all(np.abs(backward - 1) < 0.10), backward


def test_conv_stack_follows_the_same_theory():
    report = probe.run(["xavier", "he"], arch="conv", depth=20, width=32, batch_size=4, seed=0)
    assert report["he"].verdict.kind == "stable"
    assert report["xavier"].verdict.kind == "vanishing"
    # the rule saw the kernel's fans: (3 * 3 * 32) inputs per output
    assert report["he"].weight_std == pytest.approx(math.sqrt(2 / (9 * 32)))


def test_conv_mean_field_agrees_within_10_percent():
    network = probe.run("he", arch="conv", depth=6, width=128, batch_size=2, seed=0)["he"]
    ratio = network.series("output_std") / network.series("mean_field_std")
    assert np.all(np.abs(ratio - 1) < 0.10), ratio


# --- mean field -------------------------------------------------------------------------------


@pytest.mark.parametrize("variance", [0.3, 1.0, 7.0])
def test_mean_field_quadrature_is_exact_for_relu(variance):
    theory = mean_field("relu", [variance])  # one layer fed by E[x^2] = 1: q = variance
    assert theory.output_var[0] == pytest.approx(variance, rel=1e-14)
    assert theory.act_second_moment[0] == pytest.approx(variance / 2, rel=1e-12)
    assert theory.act_mean[0] == pytest.approx(math.sqrt(variance / (2 * math.pi)), rel=1e-12)
    assert theory.grad_var[0] == pytest.approx(0.5, rel=1e-12)


def test_mean_field_matches_direct_integration_with_and_without_kinks():
    integrate = pytest.importorskip("scipy.integrate")
    for name, param in [("tanh", None), ("leaky_relu", 0.2), ("elu", 1.0), ("gelu", None)]:
        act = get_activation(name, param)
        q = 1.7
        theory = mean_field(act, [q])

        def second_moment(z, act=act, q=q):
            return float(act(np.array([math.sqrt(q) * z]))[0] ** 2) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

        exact = integrate.quad(second_moment, -np.inf, 0)[0] + integrate.quad(second_moment, 0, np.inf)[0]
        assert theory.act_second_moment[0] == pytest.approx(exact, rel=1e-7), name


def test_mean_field_edge_of_chaos_tanh_decays_like_one_over_two_l():
    # q_{l+1} = E[tanh(sqrt(q_l) z)^2] ~ q_l - 2 q_l^2, so 1/q grows by 2 per layer.
    q = mean_field("tanh", [1.0] * 400).output_var
    assert 1 / q[-1] - 1 / q[-101] == pytest.approx(200, rel=0.05)


def test_mean_field_rejects_mismatched_layers():
    with pytest.raises(ValueError, match="sigma_w2_out"):
        mean_field("relu", [2.0, 2.0], [2.0])
    with pytest.raises(ValueError, match="sigma_w2_in"):
        mean_field("relu", [-1.0])


# --- the computation --------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_backward_products_are_the_adjoints_of_the_forward_product(arch):
    # <forward(x, W), g> = <x, backward(g, W)> = <W, weight_gradient(x, g)>: exact backpropagation.
    network = Network(arch, width=5, kernel_size=3, image_size=4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(network.input_shape(3))
    weight = rng.standard_normal(network.weight_shape)
    grad = rng.standard_normal(network.forward(x, weight).shape)
    inner = np.sum(network.forward(x, weight) * grad)
    assert np.sum(x * network.backward(grad, weight)) == pytest.approx(inner, rel=1e-12)
    assert np.sum(weight * network.weight_gradient(x, grad)) == pytest.approx(inner, rel=1e-12)


def test_conv_is_a_circular_cross_correlation():
    network = Network("conv", width=2, kernel_size=3, image_size=4)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 4, 2))
    kernel = rng.standard_normal((3, 3, 2, 2))
    expected = np.zeros((1, 4, 4, 2))
    for row in range(4):
        for col in range(4):
            for i in range(3):
                for j in range(3):
                    expected[0, row, col] += x[0, (row + i - 1) % 4, (col + j - 1) % 4] @ kernel[i, j]
    np.testing.assert_allclose(network.forward(x, kernel), expected, rtol=1e-12)


def test_weights_are_berry_samples_keyed_by_seed_and_layer_name():
    network = Network("mlp", width=16, kernel_size=3, image_size=8)
    for distribution in ("normal", "uniform", "truncated_normal"):
        for dtype in ("float32", "float64"):
            source = WeightSource(network, distribution, seed=7, gain=1.0, dtype=dtype)
            expected = sample((16, 16), "he", distribution=distribution, seed=7, name="layer3.weight", dtype=dtype)
            np.testing.assert_array_equal(source.weight(3, source.spec("he")), expected)  # the very same call


def test_runs_are_reproducible_and_seeded():
    first = probe.run(["he"], depth=5, width=32, seed=3).to_dict()
    again = probe.run(["he"], depth=5, width=32, seed=3).to_dict()
    other = probe.run(["he"], depth=5, width=32, seed=4).to_dict()
    assert first == again
    assert first["networks"][0]["layers"] != other["networks"][0]["layers"]


def test_rules_with_the_same_std_share_one_network_but_keep_their_labels():
    report = probe.run(["xavier", "lecun", "he"], depth=4, width=32)
    assert [n.label for n in report] == ["xavier", "lecun", "he"]
    assert report["xavier"].layers == report["lecun"].layers
    assert report["xavier"].layers != report["he"].layers


def test_default_compares_every_registered_rule():
    from berry.initializations import list_initializations

    report = probe.run(depth=3, width=16)
    assert [n.label for n in report] == list(list_initializations(aliases=False))


def test_huge_weights_overflow_in_float32():
    network = probe.run("he", depth=30, width=64, gain=1e3, seed=0)["he"]
    assert network.verdict.kind == "overflow"
    assert network.verdict.direction == "forward"
    assert network.verdict.layer < 30


def test_structural_initializers_and_callable_rules_and_activations():
    report = probe.run(["orthogonal"], depth=10, width=64, activation="linear", seed=0)
    assert report["orthogonal"].verdict.kind == "stable"
    assert report["orthogonal"].weight_std is None
    # orthogonal weights keep every input's norm exactly; the std over entries moves only by its mean
    np.testing.assert_allclose(report["orthogonal"].series("output_std"), report["orthogonal"].input_std, rtol=1e-3)

    def half_he(shape=None, fan_in=None, fan_out=None, gain=1.0, **kwargs):
        return gain * math.sqrt(1.0 / shape[0])

    by_callable = probe.run(half_he, depth=6, width=32, activation=lambda x: np.tanh(x))
    by_name = probe.run("lecun", depth=6, width=32, activation="tanh")
    np.testing.assert_allclose(by_callable["half_he"].series("output_std"), by_name["lecun"].series("output_std"),
                               rtol=1e-6)


def test_auto_gain_is_the_activations_variance_preserving_gain():
    # lecun (1/fan_in) times relu's gain sqrt(2) is He's rule: the very same network
    auto = probe.run("lecun", depth=6, width=32, gain="auto")
    assert auto.config["gain"] == pytest.approx(math.sqrt(2))
    he = probe.run("he", depth=6, width=32)
    np.testing.assert_allclose(auto["lecun"].series("output_std"), he["he"].series("output_std"), rtol=1e-6)


def test_series_names_the_quantities():
    network = probe.run("he", depth=2, width=4)["he"]
    assert network.series("grad_std").shape == (2,)
    with pytest.raises(ValueError, match="output_std"):
        network.series("preact")


def test_dead_units_are_counted():
    network = probe.run("he", depth=40, width=64, batch_size=16, seed=0)["he"]
    dead = network.series("dead_fraction")
    assert np.all((dead >= 0) & (dead <= 1))
    assert dead[-1] > 0.1  # deep ReLU nets correlate their inputs, so many units never fire on the batch
    assert probe.run("he", depth=3, width=16, activation="tanh")["he"].series("dead_fraction").max() == 0


# --- verdicts, report and errors --------------------------------------------------------------


def test_judge():
    assert judge([1.0, 2.0, 9.0], 1.0, direction="forward") == Verdict("stable")
    assert judge([1.0, 11.0], 1.0, direction="forward") == Verdict("exploding", 2, "forward")
    assert judge([0.5, 0.09], 1.0, direction="forward") == Verdict("vanishing", 2, "forward")
    assert judge([3.0, math.inf], 1.0, direction="backward", layers=[5, 4]) == Verdict("overflow", 4, "backward")
    assert judge([math.nan], 1.0, direction="forward").kind == "overflow"
    assert judge([20.0, math.inf], 1.0, direction="forward") == Verdict("overflow", 2, "forward")
    with pytest.raises(ValueError, match="layers"):
        judge([1.0], 1.0, direction="forward", layers=[1, 2])
    assert str(Verdict("exploding", 3, "backward")) == "exploding at layer 3 (backward)"


def test_report_table_dict_and_lookup():
    report = probe.run(["xavier", "he"], depth=12, width=32)
    text = report.table()
    assert "xavier" in text and "he" in text and "vanishing at layer" in text and "stable" in text
    assert "layer12" not in text  # several networks: summary only
    assert "layer12" in report.table(layers=True)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["band"] == [0.1, 10.0]
    assert [n["label"] for n in data["networks"]] == ["xavier", "he"]
    assert data["networks"][0]["verdict"]["kind"] == "vanishing"
    assert len(data["networks"][1]["layers"]) == 12
    assert data["config"]["depth"] == 12 and data["config"]["width"] == 32
    assert report.verdicts == {"xavier": "vanishing", "he": "stable"}
    with pytest.raises(KeyError, match="labels"):
        report["kaiming"]


def test_mean_field_overflows_to_inf_without_a_runtime_warning():
    # `berry probe --gain 1e10 --activation linear --depth 20` leaked NumPy's scalar-multiply RuntimeWarning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isinf(mean_field("linear", [1e20] * 20).output_var[-1])
        assert math.isinf(mean_field("relu", [1e20] * 20, residual=True, branch_scale=1e100).output_var[-1])
        network = probe.run("he", depth=20, width=8, gain=1e10, activation="linear", seed=0)["he"]
    assert network.verdict.kind == "overflow"


@pytest.mark.parametrize(("branch_scale", "rounds_to"), [(1e308, "inf"), (1e-50, "0.0")])
def test_a_branch_scale_the_dtype_cannot_hold_is_refused(branch_scale, rounds_to):
    # float32(1e308) was inf with an overflow RuntimeWarning; float32(1e-50) a silent 0 (no branch at all).
    with pytest.raises(ValueError, match=re.escape(f"branch_scale={branch_scale!r} rounds to {rounds_to} in float32")):
        probe.run("he", depth=2, width=4, residual=True, branch_scale=branch_scale)
    probe.run("he", depth=2, width=4, residual=True, branch_scale=branch_scale if branch_scale < 1 else 1e300,
              dtype="float64")


def test_report_json_survives_overflow():
    report = probe.run("he", depth=30, width=32, gain=1e3)
    json.dumps(report.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"depth": 0}, "depth"),
        ({"width": 0}, "width"),
        ({"arch": "rnn"}, "arch"),
        ({"kernel_size": 4, "arch": "conv"}, "kernel_size"),
        ({"branch_scale": 0.5}, "residual"),
        ({"residual": True, "branch_scale": -1.0}, "branch_scale"),
        ({"inits": []}, "inits"),
        ({"inits": ["he", "he"]}, "repeated"),
        ({"activation": "rleu"}, "relu"),
        ({"dtype": "float16"}, "dtype"),
        ({"distribution": "cauchy"}, "distribution"),
        ({"inits": ["hee"]}, "he"),
    ],
)
def test_bad_arguments_raise_clear_errors(options, match):
    options = {"depth": 2, "width": 4, **options}
    inits = options.pop("inits", "he")
    with pytest.raises(ValueError, match=match):
        probe.run(inits, **options)


def test_residual_must_be_a_bool():
    with pytest.raises(TypeError, match="residual"):
        probe.run("he", depth=2, width=4, residual="yes")


# --- memory: bounded whatever the depth ---------------------------------------------------------


@pytest.mark.parametrize(("arch", "residual"), [("mlp", False), ("mlp", True), ("conv", False)])
def test_recomputing_segments_gives_the_very_same_report(monkeypatch, arch, residual):
    # Weights drawn again and activations recomputed from checkpoints: the same bits as keeping everything.
    options = {"depth": 11, "width": 8, "batch_size": 4, "arch": arch, "residual": residual, "seed": 2,
               "activation": "tanh", "image_size": 4}
    whole = probe.run(["he", "orthogonal"], **options).to_dict()
    monkeypatch.setattr(runner, "_KEEP_WHOLE_BYTES", 0)
    assert runner.memory_plan(Network(arch, 8, 3, 4), 4, 11, "float32").segment < 11
    assert probe.run(["he", "orthogonal"], **options).to_dict() == whole


def test_a_5000_layer_probe_plans_megabytes_not_gigabytes():
    # The reproducer: depth 5000 at width 256 held every weight and activation (2.5 GiB).
    plan = runner.memory_plan(Network("mlp", 256), 128, 5000, "float32")
    every_layer = 5000 * (256 * 256 + 2 * 128 * 256) * 4
    assert plan.segment == round(math.sqrt(5000 * 128 * 256 / (256 * 256 + 2 * 128 * 256)))
    assert plan.peak_bytes < 64 * 2**20 < every_layer / 30


def test_deep_probe_peak_memory_is_a_fraction_of_its_weights(monkeypatch):
    tracemalloc = pytest.importorskip("tracemalloc")
    monkeypatch.setattr(runner, "_KEEP_WHOLE_BYTES", 0)
    depth, width, batch = 300, 128, 8
    probe.run("he", depth=2, width=width, batch_size=batch)  # imports and caches outside the measurement
    tracemalloc.start()
    try:
        report = probe.run("he", depth=depth, width=width, batch_size=batch)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(report["he"].layers) == depth
    all_weights = depth * width * width * 4  # what keeping every layer's weight would cost: 20 MB
    assert peak < all_weights / 8, peak


def test_a_probe_that_cannot_fit_is_refused_before_it_starts():
    with pytest.raises(MemoryError, match=r"needs about 224 GiB.*100000x100000 float32 weight is 37\.3 GiB.*--width"):
        probe.run("he", depth=3, width=100_000, max_memory=2**30)
    with pytest.raises(ValueError, match="max_memory"):
        probe.run("he", depth=3, width=4, max_memory=-1)


def test_a_vanished_network_keeps_its_mean_field_fast_and_exact():
    # Xavier with ReLU halves q at every layer: q underflows to 0 after about 1075 layers, where the
    # expectation is a point mass at 0 (no quadrature panels to refine).
    theory = mean_field("relu", [1.0] * 1200)
    assert theory.output_var[1000] == pytest.approx(2.0**-1001, rel=1e-12)
    assert theory.output_var[-1] == 0.0 and theory.grad_var[0] == 0.0
    assert theory.act_second_moment[-1] == 0.0


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_products_are_summed_in_float64_and_rounded_once(arch):
    # BLAS sums float32 products in a CPU-dependent order (AVX2 and AVX-512 differ), which made a
    # documented probe number differ between machines; float64 sums rounded once do not.
    network = Network(arch, width=24, kernel_size=3, image_size=5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(network.input_shape(4)).astype(np.float32)
    weight = (rng.standard_normal(network.weight_shape) / 8).astype(np.float32)
    grad = rng.standard_normal((*x.shape[:-1], network.width)).astype(np.float32)
    wide_x, wide_w, wide_grad = x.astype(np.float64), weight.astype(np.float64), grad.astype(np.float64)
    if arch == "mlp":
        forward = np.einsum("bi,io->bo", wide_x, wide_w)
        backward = np.einsum("bo,io->bi", wide_grad, wide_w)
        weight_gradient = np.einsum("bi,bo->io", wide_x, wide_grad)
    else:  # the circular convolution written out, offset by offset
        forward, backward = np.zeros(grad.shape), np.zeros(x.shape)
        weight_gradient = np.zeros(weight.shape)
        for i in range(3):
            for j in range(3):
                shifted = np.roll(wide_x, (1 - i, 1 - j), axis=(1, 2))
                forward += np.einsum("byxi,io->byxo", shifted, wide_w[i, j])
                backward += np.roll(np.einsum("byxo,io->byxi", wide_grad, wide_w[i, j]), (i - 1, j - 1), axis=(1, 2))
                weight_gradient[i, j] = np.einsum("byxi,byxo->io", shifted, wide_grad)
    for got, want in ((network.forward(x, weight), forward), (network.backward(grad, weight), backward),
                      (network.weight_gradient(x, grad), weight_gradient)):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want.astype(np.float32))

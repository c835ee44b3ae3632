"""Whole-model initialization for Flax: berry.jax.init_nnx, init_linen and canonical_state.

Rules by Flax path, canonical name, class and class name; keys that do not
move when a layer is added; the report; kept and callable rules; dtypes;
unknown modules; abstract models; and sharded parameters, each device making
its own shard (in a subprocess with 8 host devices, shared with Keras').
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from _helpers import run_python

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
nnx = pytest.importorskip("flax.nnx")
nn = pytest.importorskip("flax.linen")

import berry  # noqa: E402
import berry.jax as bj  # noqa: E402
from berry._rules import UnmatchedRuleError  # noqa: E402

#: Modules start from berry's constants (no JAX compilation of Flax's random initializers); berry replaces them.
CHEAP = {"kernel_init": bj.constant(0.5)}


class Net(nnx.Module):
    def __init__(self, rngs, extra=False):
        if extra:
            self.pre = nnx.Linear(8, 8, rngs=rngs, **CHEAP)
        self.fc1 = nnx.Linear(8, 16, rngs=rngs, **CHEAP)
        self.norm = nnx.LayerNorm(16, rngs=rngs)
        self.bn = nnx.BatchNorm(16, rngs=rngs)
        self.fc2 = nnx.Linear(16, 4, param_dtype=jnp.bfloat16, rngs=rngs, **CHEAP)


def xavier(shape_out_in, name, **kw):
    return berry.sample(shape_out_in, "xavier", seed=5, name=name, **kw)


def test_defaults_are_berry_torchs_in_flax_layout():
    model = Net(nnx.Rngs(0))
    report = bj.init_nnx(model, seed=5)
    np.testing.assert_array_equal(np.asarray(model.fc1.kernel[...]), xavier((16, 8), "fc1.weight").T)
    assert not np.asarray(model.fc1.bias[...]).any() and (np.asarray(model.norm.scale[...]) == 1).all()
    fc2 = np.asarray(model.fc2.kernel[...])
    assert fc2.dtype == jnp.bfloat16  # the parameter's dtype, rounded once from berry's draw
    np.testing.assert_array_equal(fc2, xavier((4, 16), "fc2.weight", dtype="bfloat16").T)
    assert report["fc1/kernel"].key == "fc1.weight" and report["fc1.weight"].std == pytest.approx(math.sqrt(2 / 24))
    assert report.reset_buffers == ("bn/mean", "bn/var")
    assert [p.rule for p in report if p.name.startswith("norm")] == ["default LayerNorm:bias", "default LayerNorm:weight"]
    assert "fc1.weight" in report.table() and report.to_dict()["seed"] == 5


def test_rules_match_flax_names_canonical_names_and_classes():
    model = Net(nnx.Rngs(0))
    rules = {"fc1/kernel": 0.5, "fc2.weight": 0.25, "LayerNorm:scale": 2.0, nnx.BatchNorm: 3.0, "Linear:bias": 0.125}
    report = bj.init_nnx(model, rules, seed=1, strict=True)
    assert float(model.fc1.kernel[0, 0]) == 0.5 and float(model.fc2.kernel[0, 0]) == 0.25
    assert float(model.norm.scale[0]) == 2.0 and float(model.bn.bias[0]) == 3.0 and float(model.fc1.bias[0]) == 0.125
    assert report["fc1.bias"].rule == "Linear:bias"
    with pytest.raises(UnmatchedRuleError, match="fc1/kernel"):
        bj.init_nnx(Net(nnx.Rngs(0)), {"fc9.weight": 1.0}, strict=True)


def test_keys_are_paths_so_adding_a_layer_changes_nothing_else():
    small, large = Net(nnx.Rngs(0)), Net(nnx.Rngs(1), extra=True)
    bj.init_nnx(small, seed=9)
    bj.init_nnx(large, seed=9)
    np.testing.assert_array_equal(np.asarray(small.fc1.kernel[...]), np.asarray(large.fc1.kernel[...]))

    class Small(nn.Module):
        extra: bool = False

        @nn.compact
        def __call__(self, x):
            if self.extra:
                x = nn.Dense(8, name="pre")(x)
            return nn.Dense(4, name="fc")(x)

    a, _ = bj.init_linen(Small(), jnp.ones((1, 8)), seed=9)
    b, _ = bj.init_linen(Small(extra=True), jnp.ones((1, 8)), seed=9)
    np.testing.assert_array_equal(np.asarray(a["params"]["fc"]["kernel"]), np.asarray(b["params"]["fc"]["kernel"]))


def test_keep_and_jax_initializer_rules():
    model = Net(nnx.Rngs(0))
    before = np.asarray(model.fc1.kernel[...]).copy()
    report = bj.init_nnx(model, {"fc1/kernel": "keep", "fc2/kernel": bj.he_normal()}, seed=4)
    np.testing.assert_array_equal(np.asarray(model.fc1.kernel[...]), before)
    assert report["fc1/kernel"].init == "kept" and report["fc2/kernel"].init == "Initializer"
    from berry.stream import key_for

    key = key_for(4, "fc2.weight")
    jax_key = jax.random.wrap_key_data(jnp.asarray([key >> 32, key & 0xFFFFFFFF], dtype=jnp.uint32))
    expected = bj.he_normal()(jax_key, (16, 4), jnp.bfloat16)
    np.testing.assert_array_equal(np.asarray(model.fc2.kernel[...]), np.asarray(expected))


def test_unknown_modules_keep_their_layout_and_name():
    class Scale(nnx.Module):
        def __init__(self):
            self.table = nnx.Param(jnp.zeros((3, 4, 5)))
            self.gain = nnx.Param(jnp.zeros((5,)))

    model = Scale()
    with pytest.warns(UserWarning, match="gain"):
        report = bj.init_nnx(model, seed=2)
    expected = berry.sample((3, 4, 5), "xavier", seed=2, name="table")  # channels-last fans: in 4*3, out 5*3
    np.testing.assert_array_equal(np.asarray(model.table[...]), expected)
    assert report["table"].key == "table" and (np.asarray(model.gain[...]) == 1).all()


def test_abstract_models_are_made_by_berry_alone():
    abstract = nnx.eval_shape(lambda: Net(nnx.Rngs(0)))
    assert isinstance(abstract.fc1.kernel.get_value(), jax.ShapeDtypeStruct)
    bj.init_nnx(abstract, seed=5)
    concrete = Net(nnx.Rngs(3))
    bj.init_nnx(concrete, seed=5)
    for a, b in zip(jax.tree.leaves(nnx.state(abstract)), jax.tree.leaves(nnx.state(concrete)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_linen_keeps_other_collections_and_boxes():
    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            self.variable("counter", "steps", lambda: jnp.full((), 7, jnp.int32))
            kernel_init = nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model"))
            x = nn.Dense(6, kernel_init=kernel_init, name="fc")(x)
            return nn.BatchNorm(use_running_average=False, name="bn")(x)

    x = jnp.ones((2, 4))
    variables, report = bj.init_linen(Model(), x, seed=3, rules={"bn.bias": 0.5})
    assert isinstance(variables["params"]["fc"]["kernel"], nn.Partitioned)
    expected = berry.sample((6, 4), "xavier", seed=3, name="fc.weight").T
    np.testing.assert_array_equal(np.asarray(variables["params"]["fc"]["kernel"].value), expected)
    assert (np.asarray(variables["batch_stats"]["bn"]["var"]) == 1).all()
    assert (np.asarray(variables["params"]["bn"]["bias"]) == 0.5).all()
    assert report.other_buffers == ("counter/steps",) and int(variables["counter"]["steps"]) == 7  # Flax's own init
    kept, _ = bj.init_linen(Model(), x, rules={"fc/kernel": "keep"}, variables=variables, seed=8)
    np.testing.assert_array_equal(np.asarray(kept["params"]["fc"]["kernel"].value), np.asarray(variables["params"]["fc"]["kernel"].value))
    state = bj.canonical_state(Model(), variables, x)
    assert sorted(state) == ["bn.bias", "bn.weight", "fc.bias", "fc.weight"]


def test_linen_variables_must_hold_what_is_kept():
    # a kept parameter missing from variables= was a bare KeyError; one of the wrong shape was returned as is
    dense, x = nn.Dense(3, name="fc"), jnp.ones((2, 4))
    keep = {"kernel": "keep"}
    with pytest.raises(ValueError, match="variables has no params/kernel"):
        bj.init_linen(dense, x, rules=keep, variables={"params": {"bias": jnp.zeros(3)}})
    wrong = {"params": {"kernel": jnp.ones((5, 5)), "bias": jnp.zeros(3)}}
    with pytest.raises(ValueError, match=r"params/kernel of shape \(5, 5\), but the module's is \(4, 3\)"):
        bj.init_linen(dense, x, rules=keep, variables=wrong)
    with pytest.raises(TypeError, match="variables must be"):
        bj.init_linen(dense, x, variables=3)
    right = {"params": {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}}
    kept, _ = bj.init_linen(dense, x, rules=keep, variables=right)
    assert (np.asarray(kept["params"]["kernel"]) == 1).all()


def test_non_float_parameter_error_says_what_the_rule_does():
    # a constant rule on a complex parameter was said to "draw random values"
    class Model(nnx.Module):
        def __init__(self):
            self.c = nnx.Param(jnp.ones((2, 2), jnp.complex64))

    with pytest.raises(TypeError, match=r"constant\(0.5\) is computed in floating point .* give c the rule 'keep'"):
        bj.init_nnx(Model(), {"c": 0.5})
    with pytest.raises(TypeError, match="normal draws random values"):
        bj.init_nnx(Model(), {"c": {"std": 1.0}})
    bj.init_nnx(Model(), {"c": "keep"})


def test_naming_and_prefix():
    model = Net(nnx.Rngs(0))
    report = bj.init_nnx(model, seed=1, naming=lambda path: "/".join(map(str, path)).replace("fc", "layer"), prefix="net")
    assert report["fc1/kernel"].key == "net.layer1.weight"
    np.testing.assert_array_equal(np.asarray(model.fc1.kernel[...]), berry.sample((16, 8), "xavier", seed=1, name="net.layer1.weight").T)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: bj.init_nnx(nn.Dense(3)), TypeError, ["flax.nnx.Module"]),
        (lambda: bj.init_linen(Net(nnx.Rngs(0)), jnp.ones((1, 8))), TypeError, ["flax.linen.Module"]),
        (lambda: bj.init_nnx(Net(nnx.Rngs(0)), {"*.weight": "xavierr"}), ValueError, ["rule '*.weight'", "xavierr"]),
        (lambda: bj.init_nnx(Net(nnx.Rngs(0)), seed=-1), ValueError, ["seed"]),
        (lambda: bj.init_nnx(Net(nnx.Rngs(0)), naming=lambda path: 3), TypeError, ["naming"]),
        (lambda: bj.canonical_state(nn.Dense(3)), TypeError, ["variables"]),
        # another framework's initializer as a rule: the error names the rule, the parameter and the form
        (lambda: bj.init_nnx(Net(nnx.Rngs(0)), {"fc1.weight": lambda shape, dtype=None: jnp.zeros(shape)}), TypeError,
         ["rule 'fc1.weight'", "fc1/kernel", "fn(key, shape, dtype)"]),
    ],
)
def test_clear_errors(call, error, words):
    with pytest.raises(error) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


SHARDING_SCRIPT = """
import numpy as np, jax, jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from flax import nnx
import flax.linen as nn
import berry, berry._canonical as canonical, berry.jax as bj

assert len(jax.devices()) == 8
sizes = []
original = canonical.canonical_values
def recording(spec, *, seed, tensor, region, dtype):
    sizes.append((tensor.key, int(np.prod([s.stop - s.start for s in region]))))
    return original(spec, seed=seed, tensor=tensor, region=region, dtype=dtype)
canonical.canonical_values = recording

mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "model"))
def expected(shape, name):  # torch layout (out, in), transposed to Flax's
    return berry.sample(shape, "xavier", seed=5, name=name).T

class M(nnx.Module):
    def __init__(self, rngs):
        part = lambda *names: nnx.with_partitioning(nnx.initializers.lecun_normal(), names)
        self.fc = nnx.Linear(16, 32, kernel_init=part(None, "model"), rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads=4, in_features=16, kernel_init=part(None, "model", None),
                                           out_kernel_init=part("model", None, None), decode=False, rngs=rngs)

with jax.set_mesh(mesh):
    concrete = M(nnx.Rngs(0))
    abstract = nnx.eval_shape(lambda: M(nnx.Rngs(0)))
sizes.clear()
bj.init_nnx(concrete, seed=5)
# each device fills its own shard: no canonical region larger than a quarter of a kernel was computed
assert max(size for key, size in sizes if key == "fc.weight") == 16 * 32 // 4, sizes
assert max(size for key, size in sizes if key == "attn.in_proj_weight") == 16 * 16 // 4, sizes
bj.init_nnx(abstract, seed=5, mesh=mesh)
for model in (concrete, abstract):
    kernel = model.fc.kernel[...]
    assert kernel.sharding.spec == P(None, "model"), kernel.sharding
    np.testing.assert_array_equal(np.asarray(kernel), expected((32, 16), "fc.weight"))
    q = np.asarray(model.attn.query.kernel[...]).reshape(16, 16)
    np.testing.assert_array_equal(q, berry.sample((48, 16), "xavier", seed=5, name="attn.in_proj_weight", fan_in=16, fan_out=16)[:16].T)

class L(nn.Module):
    @nn.compact
    def __call__(self, x):
        init = nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model"))
        return nn.Dense(32, kernel_init=init, name="fc")(x)
variables, _ = bj.init_linen(L(), jnp.ones((1, 16)), seed=5, mesh=mesh)
kernel = variables["params"]["fc"]["kernel"].value
assert kernel.sharding.spec == P(None, "model")
np.testing.assert_array_equal(np.asarray(kernel), expected((32, 16), "fc.weight"))

import keras, berry.keras as bk
device_mesh = keras.distribution.DeviceMesh((2, 4), ("data", "model"), devices=jax.devices())
layout_map = keras.distribution.LayoutMap(device_mesh)
layout_map[".*fc.*kernel"] = (None, "model")
keras.distribution.set_distribution(keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="data"))
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, name="fc")])
sizes.clear()
bk.init_model(model, seed=5)
value = model.layers[0].kernel.value
assert value.sharding.spec == P(None, "model"), value.sharding
assert max(size for key, size in sizes if key == "fc.weight") == 16 * 32 // 4, sizes
np.testing.assert_array_equal(np.asarray(value), expected((32, 16), "fc.weight"))
print("ok")
"""


def test_sharded_parameters_are_made_shard_by_shard():
    pytest.importorskip("keras")
    result = run_python(SHARDING_SCRIPT, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.strip().endswith("ok")


class _Block(nnx.Module):
    def __init__(self, rngs):
        self.fc = nnx.Linear(4, 3, rngs=rngs, **CHEAP)
        self.norm = nnx.LayerNorm(3, rngs=rngs)


def test_stacked_layers_are_one_layer_per_index():
    # nnx.vmap over a block stacks its parameters: fc.kernel is (5, 4, 3). Read as one Dense, its fans were
    # (5, 12) (std 0.34 instead of Xavier's 0.53 for 4 -> 3), silently.
    @nnx.vmap(in_axes=0, out_axes=0)
    def make(rngs):
        return _Block(rngs)

    class Stack(nnx.Module):
        def __init__(self):
            self.blocks = make(nnx.Rngs(0).split(5))

    model = Stack()
    assert model.blocks.fc.kernel[...].shape == (5, 4, 3)
    report = bj.init_nnx(model, seed=5)
    kernel = np.asarray(model.blocks.fc.kernel[...])
    for i in range(5):
        np.testing.assert_array_equal(kernel[i], xavier((3, 4), f"blocks.fc.{i}.weight").T)
    assert not np.asarray(model.blocks.fc.bias[...]).any() and (np.asarray(model.blocks.norm.scale[...]) == 1).all()
    row = report["blocks/fc/kernel"]
    assert row.std == pytest.approx(math.sqrt(2 / 7)) and row.key == "blocks.fc.0.weight+...+blocks.fc.4.weight (5 tensors)"
    state = bj.canonical_state(model)
    assert sorted(k for k in state if k.startswith("blocks.fc.")) == sorted(
        [f"blocks.fc.{i}.weight" for i in range(5)] + [f"blocks.fc.{i}.bias" for i in range(5)])


def test_scanned_linen_layers_are_one_layer_per_index():
    class Scanned(nn.Module):
        @nn.compact
        def __call__(self, x):
            def body(module, carry, _):
                return nn.Dense(4, kernel_init=CHEAP["kernel_init"], name="fc")(carry), None

            scan = nn.scan(body, variable_axes={"params": 0}, split_rngs={"params": True}, length=3)
            return scan(self, x, None)[0]

    variables, report = bj.init_linen(Scanned(), jnp.ones((2, 4)), seed=7)
    kernel = np.asarray(variables["params"]["fc"]["kernel"])
    assert kernel.shape == (3, 4, 4)
    for i in range(3):
        np.testing.assert_array_equal(kernel[i], berry.sample((4, 4), "xavier", seed=7, name=f"fc.{i}.weight").T)
    assert report["fc/kernel"].std == pytest.approx(math.sqrt(2 / 8))

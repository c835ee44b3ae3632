"""berry.torch as a drop-in for torch.nn.init.

``TestTorchBehaviours`` exercises the behaviours PyTorch's own
``test/nn/test_init.py`` checks (laws by KS test at the std recomputed here,
errors, warnings, structure), run against both ``berry.torch`` and
``torch.nn.init`` so that each test is shown to hold for the reference too.
The other tests cover what is berry's own: the generator and keyed-stream
semantics, dtypes, views, autograd, meta tensors and memory.
"""

from __future__ import annotations

import math
import random
import string
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
from _helpers import P_MIN, dtype_params, ks_pvalue
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

import torch.nn.functional as F  # noqa: E402
import torch.nn.init as torch_init  # noqa: E402

import berry  # noqa: E402
import berry.torch as berry_init  # noqa: E402
from berry._validation import MissingNameError  # noqa: E402


@pytest.fixture(params=["berry", "torch"])
def init(request):
    """The module under test: berry.torch, and torch.nn.init as the reference the tests must also accept."""
    torch.manual_seed(20240611)  # the default generator feeds both; fixed so nothing is flaky
    return berry_init if request.param == "berry" else torch_init


@pytest.fixture
def rng():
    return random.Random(123)


def random_tensor(rng, dims, size_min, size_max, dtype=torch.float32):
    return torch.zeros([rng.randint(size_min, size_max) for _ in range(dims)], dtype=dtype)


def ks_normal(tensor, mean, std):
    return ks_pvalue(tensor.double().numpy(), stats.norm(mean, std))


def ks_uniform(tensor, a, b):
    return ks_pvalue(tensor.double().numpy(), stats.uniform(a, b - a))


def ks_trunc_normal(tensor, mean, std, a, b):
    return ks_pvalue((tensor.double().numpy() - mean) / std, stats.truncnorm((a - mean) / std, (b - mean) / std))


def torch_fans(tensor):
    """Fans as torch documents them, recomputed independently: (out, in, *kernel)."""
    receptive = tensor[0, 0].numel() if tensor.dim() > 2 else 1
    return tensor.size(1) * receptive, tensor.size(0) * receptive


class TestTorchBehaviours:
    def test_calculate_gain(self, init):
        for name in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
            assert init.calculate_gain(name) == 1
        assert init.calculate_gain("sigmoid") == 1
        assert init.calculate_gain("tanh") == 5 / 3
        assert init.calculate_gain("relu") == math.sqrt(2)
        assert init.calculate_gain("selu") == 0.75
        for slope, expected in [(None, 1.4141428569978354), (0, math.sqrt(2)), (0.01, 1.4141428569978354), (10, 0.14071950894605836)]:
            assert init.calculate_gain("leaky_relu", slope) == pytest.approx(expected, rel=1e-15)

    def test_calculate_gain_errors(self, init, rng):
        for param in (True, [1], {"a": "b"}):
            with pytest.raises(ValueError):
                init.calculate_gain("leaky_relu", param)
        for n in (2, 5, 25):
            with pytest.raises(ValueError):
                init.calculate_gain("".join(rng.choice(string.ascii_lowercase) for _ in range(n)))

    @pytest.mark.parametrize("dims", [1, 2, 4])
    def test_uniform(self, init, rng, dims):
        tensor = random_tensor(rng, dims, *((30, 50) if dims < 4 else (8, 12)))
        a = rng.uniform(-3, 3)
        b = a + rng.uniform(1, 5)
        init.uniform_(tensor, a=a, b=b)
        assert ks_uniform(tensor, a, b) > P_MIN

    @pytest.mark.parametrize("dims", [1, 2, 4])
    def test_normal(self, init, rng, dims):
        tensor = random_tensor(rng, dims, *((30, 50) if dims < 4 else (8, 12)))
        mean, std = rng.uniform(-3, 3), rng.uniform(1, 5)
        init.normal_(tensor, mean=mean, std=std)
        assert ks_normal(tensor, mean, std) > P_MIN

    def test_trunc_normal_generator(self, init):
        generator = torch.Generator().manual_seed(42)
        with_generator = init.trunc_normal_(torch.empty(5), generator=generator)
        torch.manual_seed(42)
        with_default = init.trunc_normal_(torch.empty(5))
        assert torch.equal(with_generator, with_default)
        assert ks_trunc_normal(torch.cat([with_generator]), 0, 1, 0, 1) > P_MIN  # torch's own (lenient) check

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    @pytest.mark.parametrize("dims", [1, 2, 4])
    def test_trunc_normal_all_dtypes(self, init, rng, dims, dtype):
        tensor = random_tensor(rng, dims, *((30, 50) if dims < 4 else (8, 12)), dtype)
        mean, std = rng.uniform(-3, 3), rng.uniform(0.01, 1)
        a, b = rng.uniform(mean - 2 * std, mean), rng.uniform(mean, mean + 2 * std)
        init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)
        assert tensor.min().item() >= torch.tensor(a, dtype=dtype).item()
        assert tensor.max().item() <= torch.tensor(b, dtype=dtype).item()
        assert ks_trunc_normal(tensor, mean, std, a, b) > P_MIN

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_trunc_normal_low_precision(self, init, dtype):
        tensor = init.trunc_normal_(torch.empty(10000, dtype=dtype), mean=0.0, std=1.0, a=-2.0, b=2.0)
        assert tensor.min().item() >= -2 and tensor.max().item() <= 2
        assert ks_trunc_normal(tensor.float(), 0, 1, -2, 2) > P_MIN

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
    def test_trunc_normal_narrow_interval(self, init, dtype):
        tensor = init.trunc_normal_(torch.empty(10000, dtype=dtype), mean=0.0, std=1.0, a=2.0, b=3.0)
        assert tensor.min().item() >= 2 and tensor.max().item() <= 3
        assert ks_trunc_normal(tensor.float(), 0, 1, 2, 3) > P_MIN

    @pytest.mark.parametrize(
        ("dtype", "min_unique"),
        [(torch.float32, 5000), (torch.float64, 5000), (torch.float16, 3000), (torch.bfloat16, 1000)],
    )
    def test_trunc_normal_unique_values(self, init, dtype, min_unique):
        tensor = init.trunc_normal_(torch.empty(10000, dtype=dtype), mean=0.0, std=1.0, a=-2.0, b=2.0)
        assert -2 <= tensor.min().item() and tensor.max().item() <= 2
        assert tensor.unique().numel() > min_unique
        assert torch.isfinite(tensor).all()

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
    def test_trunc_normal_no_boundary_values(self, init, dtype):
        tensor = init.trunc_normal_(torch.empty(10000, dtype=dtype), mean=0.0, std=0.1, a=-2.0, b=2.0)
        assert not (tensor.abs() == 2).any()

    @pytest.mark.parametrize("dims", [1, 2, 4])
    def test_constant_ones_zeros(self, init, rng, dims):
        tensor = random_tensor(rng, dims, 1, 5)
        value = rng.uniform(1, 10)
        assert torch.equal(init.constant_(tensor, value), torch.full_like(tensor, value))
        assert torch.equal(init.ones_(tensor), torch.ones_like(tensor))
        assert torch.equal(init.zeros_(tensor), torch.zeros_like(tensor))

    def test_eye(self, init, rng):
        tensor = random_tensor(rng, 2, 1, 5)
        init.eye_(tensor)
        assert torch.equal(tensor, torch.eye(*tensor.shape))
        for dims in (1, 3):
            with pytest.raises(ValueError):
                init.eye_(random_tensor(rng, dims, 1, 3))

    @pytest.mark.parametrize("dims", [3, 4, 5])
    @pytest.mark.parametrize("groups", [1, 2, 3])
    def test_dirac_properties(self, init, rng, dims, groups):
        a, c, d, e = (rng.randint(1, 5) for _ in range(4))
        b = rng.randint(1, 5 * groups)
        tensor = torch.randn((a * groups, b, c, d, e)[:dims])
        init.dirac_(tensor, groups)
        copies = min(a, b)
        assert torch.nonzero(tensor).size(0) == copies * groups
        assert tensor.sum().item() == copies * groups

    @pytest.mark.parametrize("groups", [1, 3])
    def test_dirac_identity(self, init, groups):
        batch, in_c, out_c, size, kernel = 8, 3, 9, 5, 3
        per_group = out_c // groups
        for conv, spatial in ((F.conv1d, 1), (F.conv2d, 2), (F.conv3d, 3)):
            x = torch.randn(batch, in_c, *([size] * spatial))
            weight = torch.cat([torch.zeros(per_group, in_c, *([kernel] * spatial))] * groups)
            init.dirac_(weight, groups)
            y = conv(x, weight)
            inner = (slice(None), slice(None), *([slice(1, -1)] * spatial))
            for g in range(groups):
                assert torch.equal(y[:, per_group * g : per_group * g + in_c], x[inner])
                assert not y[:, per_group * g + in_c : per_group * (g + 1)].any()

    def test_dirac_errors(self, init, rng):
        for dims in (1, 2, 6):
            with pytest.raises(ValueError):
                init.dirac_(random_tensor(rng, dims, 1, 3))
        with pytest.raises(ValueError):
            init.dirac_(torch.empty(5, 2, 3), groups=2)

    @pytest.mark.parametrize("name", ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"])
    def test_fan_based_errors_under_2d(self, init, rng, name):
        for dims in (0, 1):
            with pytest.raises(ValueError):
                getattr(init, name)(random_tensor(rng, dims, 1, 1))

    @pytest.mark.parametrize("name", ["kaiming_uniform_", "kaiming_normal_"])
    def test_kaiming_zero_element_warning(self, init, name):
        tensor = torch.empty(0, 1)
        with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
            assert getattr(init, name)(tensor) is tensor

    @pytest.mark.parametrize("dims", [2, 4])
    @pytest.mark.parametrize("use_gain", [True, False])
    @pytest.mark.parametrize("law", ["uniform", "normal"])
    def test_xavier(self, init, rng, dims, use_gain, law):
        tensor = random_tensor(rng, dims, *((20, 25) if dims == 2 else (6, 9)))
        gain = rng.uniform(0.1, 2) if use_gain else 1.0
        fill = getattr(init, f"xavier_{law}_")
        fill(tensor, gain=gain) if use_gain else fill(tensor)
        fan_in, fan_out = torch_fans(tensor)
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        bound = math.sqrt(3) * std
        p = ks_uniform(tensor, -bound, bound) if law == "uniform" else ks_normal(tensor, 0, std)
        assert p > P_MIN

    @pytest.mark.parametrize("dims", [2, 4])
    @pytest.mark.parametrize("use_a", [True, False])
    @pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
    @pytest.mark.parametrize("law", ["uniform", "normal"])
    def test_kaiming(self, init, rng, dims, use_a, mode, law):
        tensor = random_tensor(rng, dims, *((20, 25) if dims == 2 else (6, 9)))
        fill = getattr(init, f"kaiming_{law}_")
        a = rng.uniform(0.1, 2) if use_a else 0
        fill(tensor, a=a, mode=mode) if use_a else fill(tensor, mode=mode)
        fan_in, fan_out = torch_fans(tensor)
        std = math.sqrt(2.0 / ((1 + a**2) * (fan_in if mode == "fan_in" else fan_out)))
        bound = math.sqrt(3) * std
        p = ks_uniform(tensor, -bound, bound) if law == "uniform" else ks_normal(tensor, 0, std)
        assert p > P_MIN

    def test_kaiming_bad_mode(self, init):
        with pytest.raises(ValueError):
            init.kaiming_normal_(torch.empty(3, 4), mode="fan_avg")

    def test_sparse_errors(self, init, rng):
        for dims in (1, 3):
            with pytest.raises(ValueError):
                init.sparse_(random_tensor(rng, dims, 1, 3), rng.uniform(0.1, 0.9))

    @pytest.mark.parametrize("use_random_std", [True, False])
    def test_sparse(self, init, rng, use_random_std):
        tensor = random_tensor(rng, 2, 30, 35)
        sparsity = rng.uniform(0.1, 0.2)
        std = rng.uniform(0.01, 0.2) if use_random_std else 0.01
        init.sparse_(tensor, sparsity=sparsity, std=std) if use_random_std else init.sparse_(tensor, sparsity=sparsity)
        zeros_per_column = (tensor == 0).sum(dim=0)
        assert (zeros_per_column >= math.ceil(sparsity * tensor.size(0))).all()
        assert ks_normal(tensor[tensor != 0], 0, std) > P_MIN

    @pytest.mark.parametrize("shape", [[3, 4], [4, 3], [20, 2, 3, 4], [2, 3, 4, 5]])
    @pytest.mark.parametrize("use_gain", [True, False])
    def test_orthogonal(self, init, rng, shape, use_gain):
        tensor = torch.zeros(shape)
        gain = rng.uniform(0.1, 2) if use_gain else 1.0
        init.orthogonal_(tensor, gain=gain) if use_gain else init.orthogonal_(tensor)
        rows, cols = shape[0], math.prod(shape[1:])
        flat = tensor.view(rows, cols)
        gram = flat.t() @ flat if rows > cols else flat @ flat.t()
        torch.testing.assert_close(gram, torch.eye(min(rows, cols)) * gain**2, atol=1e-6, rtol=0)
        with pytest.raises(ValueError):
            init.orthogonal_(torch.empty(3))

    @pytest.mark.parametrize(
        "name", ["uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal",
                 "kaiming_uniform", "kaiming_normal", "orthogonal", "sparse"],
    )
    def test_deprecated_names_warn(self, init, name):
        arguments = {"constant": (0.5,), "sparse": (0.1,)}.get(name, ())
        tensor = torch.empty(4, 4, 3) if name == "dirac" else torch.empty(4, 4)
        with pytest.warns(FutureWarning, match="deprecated"):
            getattr(init, name)(tensor, *arguments)


def test_same_public_names_as_torch():
    assert set(torch_init.__all__) <= set(berry_init.__all__)
    for name in torch_init.__all__:
        assert callable(getattr(berry_init, name)), name
    assert berry_init._calculate_fan_in_and_fan_out(torch.empty(16, 8, 3)) == (24, 48)


@pytest.mark.parametrize("name", ["uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
                                  "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_"])
def test_signatures_match_torch(name):
    import inspect

    ours = inspect.signature(getattr(berry_init, name)).parameters
    theirs = inspect.signature(getattr(torch_init, name)).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    for parameter in theirs.values():
        assert ours[parameter.name].default == parameter.default, parameter.name
    assert [p for p in ours if p not in theirs] == ["seed", "name"]
    assert all(ours[p].kind is inspect.Parameter.KEYWORD_ONLY for p in ("seed", "name"))


# ----------------------------------------------------------------------- generator semantics
RANDOM_CALLS = {
    "uniform_": lambda t, **k: berry_init.uniform_(t, -1.0, 2.0, **k),
    "normal_": lambda t, **k: berry_init.normal_(t, 0.5, 2.0, **k),
    "trunc_normal_": lambda t, **k: berry_init.trunc_normal_(t, 0.0, 0.02, -0.04, 0.04, **k),
    "xavier_uniform_": lambda t, **k: berry_init.xavier_uniform_(t, **k),
    "xavier_normal_": lambda t, **k: berry_init.xavier_normal_(t, **k),
    "kaiming_uniform_": lambda t, **k: berry_init.kaiming_uniform_(t, **k),
    "kaiming_normal_": lambda t, **k: berry_init.kaiming_normal_(t, **k),
    "orthogonal_": lambda t, **k: berry_init.orthogonal_(t, **k),
    "sparse_": lambda t, **k: berry_init.sparse_(t, 0.25, **k),
}


@pytest.mark.parametrize("name", list(RANDOM_CALLS))
def test_generator_semantics(name):
    call = RANDOM_CALLS[name]
    torch.manual_seed(42)
    first, second = call(torch.empty(12, 8)), call(torch.empty(12, 8))
    generator = torch.Generator().manual_seed(42)
    assert torch.equal(call(torch.empty(12, 8), generator=generator), first)
    assert torch.equal(call(torch.empty(12, 8), generator=generator), second)
    assert not torch.equal(first, second)  # successive calls give fresh values


@pytest.mark.parametrize("name", list(RANDOM_CALLS))
def test_keyed_stream_leaves_generators_alone(name):
    call = RANDOM_CALLS[name]
    state = torch.get_rng_state()
    keyed = call(torch.empty(12, 8), seed=3, name="layer.weight")
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(call(torch.empty(12, 8), seed=3, name="layer.weight"), keyed)
    assert not torch.equal(call(torch.empty(12, 8), seed=3, name="other.weight"), keyed)
    assert not torch.equal(call(torch.empty(12, 8), seed=4, name="layer.weight"), keyed)
    assert torch.equal(call(torch.empty(12, 8), name="layer.weight"), call(torch.empty(12, 8), seed=0, name="layer.weight"))
    with pytest.raises(ValueError, match="not both"):
        call(torch.empty(12, 8), generator=torch.Generator(), seed=3)


@pytest.mark.parametrize("name", list(RANDOM_CALLS))
def test_a_seed_without_a_name_is_an_error_that_says_why(name):
    call = RANDOM_CALLS[name]
    for tensor in (torch.empty(12, 8), torch.empty(12, 8, device="meta"), torch.empty(0, 8)):
        with pytest.raises(MissingNameError) as info:
            call(tensor, seed=3)
        assert "(seed, name, flat index)" in str(info.value) and "prefix" in str(info.value)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\)"):
        call(torch.empty(12, 8), seed=-1, name="w")


def test_keyed_values_are_berry_sample():
    shape = (33, 17)
    cases = [
        (berry_init.normal_(torch.empty(shape), 0.5, 2.0, seed=9, name="w"),
         berry.sample(shape, std=2.0, mean=0.5, seed=9, name="w")),
        (berry_init.uniform_(torch.empty(shape), -1.0, 3.0, seed=9, name="w"),
         berry.sample(shape, distribution="uniform", low=-1.0, high=3.0, seed=9, name="w")),
        (berry_init.trunc_normal_(torch.empty(shape), 0.0, 1.0, -1.5, 2.0, seed=9, name="w"),
         berry.sample(shape, distribution="truncated_normal", std=1.0, bounds=(-1.5, 2.0), correct_variance=False,
                      seed=9, name="w")),
        (berry_init.xavier_normal_(torch.empty(shape), seed=9, name="w"),
         berry.sample(shape, "xavier", seed=9, name="w", layout="torch")),
        # torch's kaiming std is gain / sqrt(fan) with gain = calculate_gain("relu") = sqrt(2): fan_in 17.
        (berry_init.kaiming_uniform_(torch.empty(shape), nonlinearity="relu", seed=9, name="w"),
         berry.sample(shape, distribution="uniform", std=math.sqrt(2.0) * math.sqrt(1.0 / 17), seed=9, name="w")),
        (berry_init.orthogonal_(torch.empty(shape), seed=9, name="w"),
         berry.sample(shape, "orthogonal", seed=9, name="w", layout="torch")),
    ]
    for got, expected in cases:
        np.testing.assert_array_equal(got.numpy(), expected)  # the same bits, not only the same law


# ----------------------------------------------------------------------- kinds of tensors
@pytest.mark.parametrize("dtype", dtype_params([torch.float16, torch.bfloat16, torch.float32, torch.float64]))
def test_dtypes_equal_berry_sample_rounded_once(dtype):
    tensor = berry_init.normal_(torch.empty(40, 30, dtype=dtype), std=0.02, seed=1, name="w")
    expected = berry.sample((40, 30), std=0.02, seed=1, name="w", dtype=str(dtype).removeprefix("torch."))
    if dtype == torch.bfloat16:
        expected = torch.from_numpy(expected.view(np.uint16)).view(torch.bfloat16)
    else:
        expected = torch.from_numpy(expected)
    assert torch.equal(tensor, expected)


def test_non_contiguous_views_get_their_own_values():
    base = torch.zeros(10, 12)
    view = base.T  # (12, 10), not contiguous
    berry_init.normal_(view, seed=5, name="v")
    assert torch.equal(view, torch.from_numpy(berry.sample((12, 10), std=1.0, seed=5, name="v")))
    base = torch.zeros(10, 12)
    window = base[2:5, 3:9]
    berry_init.uniform_(window, seed=5, name="v")
    assert torch.equal(window, torch.from_numpy(berry.sample((3, 6), distribution="uniform", low=0.0, high=1.0,
                                                             seed=5, name="v")))
    outside = torch.ones_like(base, dtype=torch.bool)
    outside[2:5, 3:9] = False
    assert not base[outside].any()


def test_requires_grad_records_no_history():
    weight = torch.nn.Parameter(torch.empty(8, 4))
    version = weight._version
    for fill in (berry_init.normal_, berry_init.xavier_uniform_, berry_init.orthogonal_, berry_init.zeros_):
        fill(weight)
        assert weight.grad_fn is None and weight.is_leaf and weight.requires_grad
    assert weight._version > version  # autograd still sees the in-place change


def test_meta_tensors_are_a_no_op():
    state = torch.get_rng_state()
    meta = torch.empty(6, 4, 3, device="meta")
    for fill in (berry_init.normal_, berry_init.uniform_, berry_init.trunc_normal_, berry_init.xavier_normal_,
                 berry_init.kaiming_uniform_, berry_init.orthogonal_, berry_init.dirac_, berry_init.zeros_):
        assert fill(meta) is meta
    berry_init.eye_(torch.empty(3, 3, device="meta"))
    berry_init.sparse_(torch.empty(3, 3, device="meta"), 0.5)
    assert torch.equal(torch.get_rng_state(), state)


def test_structural_initializers_accept_integer_tensors():
    assert torch.equal(berry_init.eye_(torch.empty(3, 4, dtype=torch.int64)), torch.eye(3, 4, dtype=torch.int64))
    assert berry_init.dirac_(torch.empty(2, 2, 3, dtype=torch.int32)).sum().item() == 2
    with pytest.raises(TypeError, match="floating"):
        berry_init.normal_(torch.empty(3, dtype=torch.int64))


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="a <= b"):
        berry_init.uniform_(torch.empty(3), 2.0, 1.0)
    with pytest.raises(RuntimeError, match="std >= 0"):  # what torch raises for it, and a ValueError too
        berry_init.normal_(torch.empty(3), std=-1.0)
    with pytest.raises(ValueError, match="a < b"):
        berry_init.trunc_normal_(torch.empty(3), a=1.0, b=1.0)
    with pytest.raises(ValueError, match="gain"):
        berry_init.xavier_normal_(torch.empty(3, 3), gain=-1.0)
    with pytest.raises(ValueError, match="sparsity"):
        berry_init.sparse_(torch.empty(3, 3), 1.5)
    with pytest.raises(TypeError, match="name"):
        berry_init.normal_(torch.empty(3), name=3)
    assert torch.equal(berry_init.normal_(torch.empty(3), 2.0, 0.0), torch.full((3,), 2.0))  # std 0 is the mean


def test_fills_in_place_without_a_full_size_copy():
    tensor = torch.empty(1024, 1024)  # 4 MiB of float32
    berry_init.normal_(tensor, seed=0, name="warm")
    tracemalloc.start()
    try:
        pointer = tensor.data_ptr()
        berry_init.trunc_normal_(tensor, std=0.02, a=-0.04, b=0.04, seed=0, name="w")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tensor.data_ptr() == pointer
    assert peak < tensor.numel() * tensor.element_size() / 2, peak


def test_torch_function_overrides_are_honoured():
    calls: list[str] = []

    class Logged(torch.Tensor):

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            calls.append(getattr(func, "__name__", str(func)))
            return super().__torch_function__(func, types, args, kwargs or {})

    tensor = torch.empty(4, 4).as_subclass(Logged)
    berry_init.uniform_(tensor, seed=1, name="w")
    assert "uniform_" in calls


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_get_the_host_values():  # pragma: no cover - run where a GPU is present
    tensor = berry_init.normal_(torch.empty(64, 32, device="cuda"), std=0.5, seed=2, name="w")
    assert torch.equal(tensor.cpu(), berry_init.normal_(torch.empty(64, 32), std=0.5, seed=2, name="w"))
    torch.manual_seed(7)
    drawn = berry_init.uniform_(torch.empty(5, device="cuda"))
    torch.manual_seed(7)
    assert torch.equal(drawn, berry_init.uniform_(torch.empty(5, device="cuda")))


def test_import_berry_does_not_import_torch():
    code = "import sys, berry; assert 'torch' not in sys.modules; import berry.torch; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_zero_element_tensors_are_left_alone():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fill in (berry_init.normal_, berry_init.uniform_, berry_init.xavier_uniform_, berry_init.orthogonal_):
            fill(torch.empty(0, 3))


@settings(max_examples=25, derandomize=True, deadline=None)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=3), st.data())
def test_any_window_of_a_tensor_gets_exactly_its_own_values(shape, data):
    base = torch.zeros([size + 3 for size in shape])
    window = tuple(
        slice(start, start + size)
        for size, start in zip(shape, data.draw(st.tuples(*[st.integers(0, 3) for _ in shape])), strict=True)
    )
    view = base[window]
    if data.draw(st.booleans()) and view.dim() > 1:
        view = view.transpose(0, -1)
    berry_init.trunc_normal_(view, std=0.5, a=-1.0, b=1.0, seed=2, name="view")
    expected = berry.sample(tuple(view.shape), distribution="truncated_normal", std=0.5, bounds=(-2.0, 2.0),
                            correct_variance=False, seed=2, name="view")
    assert torch.equal(view, torch.from_numpy(expected))
    untouched = torch.ones_like(base, dtype=torch.bool)
    untouched[window] = False
    assert not base[untouched].any()

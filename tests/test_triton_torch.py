"""berry.torch through the Triton kernel: the same bits as the host path, and the routing around it.

``BERRY_TORCH_KERNEL=triton`` with ``TRITON_INTERPRET=1`` sends CPU tensors through the device kernel
under Triton's interpreter, so the drop-in functions, ``init_model`` (per-gate fans, constants) and
DTensor shards are checked here against the host path (``BERRY_TORCH_KERNEL=host``) and
:func:`berry.sample`, bit for bit. The routing rules (when CUDA tensors use the kernel, the one-time
warning when they cannot) are checked with stand-in tensors, since this machine has no GPU.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest
from _helpers import ROOT, leave_worker, spawn_gathered
from _triton_helpers import requires_triton, torch

import berry
import berry.torch as init
from berry import InitSpec
from berry.torch import _device as torch_device

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


@pytest.fixture
def launches(monkeypatch):
    """Route CPU tensors through the interpreted kernel; the list counts its launches."""
    monkeypatch.setenv("BERRY_TORCH_KERNEL", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    calls: list[int] = []
    real = torch_device._launch

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch_device, "_launch", counted)
    return calls


def on_host(fill, *args, **kwargs):
    """``fill(*args, **kwargs)`` with the kernel switched off."""
    saved = {key: os.environ.pop(key, None) for key in ("BERRY_TORCH_KERNEL", "TRITON_INTERPRET")}
    os.environ["BERRY_TORCH_KERNEL"] = "host"
    try:
        return fill(*args, **kwargs)
    finally:
        del os.environ["BERRY_TORCH_KERNEL"]
        os.environ.update({key: value for key, value in saved.items() if value is not None})


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(-1).view(torch.uint8), b.view(-1).view(torch.uint8))


@requires_triton
@pytest.mark.parametrize("dtype", DTYPES)
def test_normal_equals_berry_sample(launches, dtype):
    tensor = init.normal_(torch.empty(6, 19, dtype=DTYPES[dtype]), mean=0.1, std=0.02, seed=3, name="w")
    expected = berry.sample((6, 19), "xavier", std=0.02, mean=0.1, seed=3, name="w", dtype=dtype)
    got = tensor.view(torch.int16).numpy() if dtype == "bfloat16" else tensor.numpy()
    assert launches and np.array_equal(got.view(np.uint8), expected.view(np.uint8))


DROP_INS = [
    functools.partial(init.trunc_normal_, std=0.02, a=-0.04, b=0.03, seed=1, name="t"),
    functools.partial(init.trunc_normal_, mean=1.0, std=2.0, a=4.0, b=float("inf"), seed=1, name="tail"),
    functools.partial(init.uniform_, a=-0.5, b=0.25, seed=2, name="u"),
    functools.partial(init.xavier_uniform_, gain=1.5, seed=4, name="x"),
    functools.partial(init.kaiming_normal_, nonlinearity="relu", seed=5, name="k"),
    functools.partial(init.constant_, val=0.1),
]


@requires_triton
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("fill", DROP_INS, ids=["trunc_normal", "one_sided", "uniform", "xavier", "kaiming", "constant"])
def test_drop_ins_equal_the_host_path(launches, fill, dtype):
    device = fill(torch.empty(7, 5, 3, dtype=DTYPES[dtype]))
    host = on_host(fill, torch.empty(7, 5, 3, dtype=DTYPES[dtype]))
    assert same_bits(device, host)


@requires_triton
def test_views_zero_d_and_gradients(launches):
    base = torch.zeros(9, 12)
    view = base.t()[2:7]  # non-contiguous: filled through a dense temporary on the device
    init.normal_(view, std=0.5, seed=1, name="v")
    assert same_bits(view.contiguous(), on_host(init.normal_, torch.empty(5, 9), std=0.5, seed=1, name="v"))
    assert float(base[:, :2].abs().sum()) == 0.0 and float(base[:, 7:].abs().sum()) == 0.0
    scalar = init.uniform_(torch.empty(()), seed=0, name="s")
    assert same_bits(scalar, on_host(init.uniform_, torch.empty(()), seed=0, name="s"))
    weight = torch.nn.Parameter(torch.empty(4, 4))
    version = weight._version
    init.normal_(weight, std=0.1, seed=0, name="p")
    assert weight._version > version and weight.grad_fn is None


def tiny_models() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.ModuleDict(
        {
            "lstm": torch.nn.LSTM(6, 5),  # input weights: each gate its own fans; recurrent: orthogonal (host)
            "attn": torch.nn.MultiheadAttention(8, 2),  # packed q, k, v: one stream, three fans
            "emb": torch.nn.Embedding(10, 4, padding_idx=0),
            "norm": torch.nn.LayerNorm(4),
        }
    )


@requires_triton
def test_init_model_equals_the_host_path(launches):
    rules = {"emb.weight": {"distribution": "truncated_normal", "std": 0.02}, "norm.bias": 0.25}
    device_model, host_model = tiny_models(), tiny_models()
    init.init_model(device_model, rules, seed=11)
    on_host(init.init_model, host_model, rules, seed=11)
    assert len(launches) > 0
    for (name, device), (_, host) in zip(device_model.named_parameters(), host_model.named_parameters(), strict=True):
        assert same_bits(device.detach(), host.detach()), name


def test_kernel_failures_fall_back_to_the_host_once(monkeypatch):
    """auto mode: a kernel that cannot compile (no CUDA toolkit, ...) warns once and the host path fills."""
    monkeypatch.setattr(torch_device, "kernel_mode", lambda tensor, spec: "compiled")
    monkeypatch.setattr(torch_device, "_disabled_reason", None)
    monkeypatch.setattr(torch_device, "_warned", set())

    def broken(*args, **kwargs):
        raise RuntimeError("ptxas not found")

    monkeypatch.setattr(torch_device, "_launch", broken)
    with pytest.warns(torch_device.HostFallbackWarning, match="ptxas not found"):
        tensor = init.normal_(torch.empty(5, 3), std=2.0, seed=1, name="w")
    assert same_bits(tensor, on_host(init.normal_, torch.empty(5, 3), std=2.0, seed=1, name="w"))
    assert torch_device._disabled_reason is not None


def stand_in(device: str, dtype=torch.float32) -> types.SimpleNamespace:
    """What kernel_mode reads of a tensor, for devices this machine does not have."""
    return types.SimpleNamespace(device=torch.device(device), dtype=dtype)


def test_routing(monkeypatch):
    normal, orthogonal = InitSpec(std=0.02), InitSpec("orthogonal")
    monkeypatch.setattr(torch_device, "_warned", set())
    monkeypatch.setattr(torch_device, "_disabled_reason", None)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv("BERRY_TORCH_KERNEL", raising=False)
    monkeypatch.setattr(torch_device._device, "triton_available", lambda: True)
    assert torch_device.kernel_mode(stand_in("cuda"), normal) == "compiled"
    assert torch_device.kernel_mode(stand_in("cuda"), orthogonal) is None  # structural: on the host
    assert torch_device.kernel_mode(stand_in("cuda", torch.int64), InitSpec("zeros")) == "compiled"
    assert torch_device.kernel_mode(stand_in("cpu"), normal) is None
    assert torch_device.kernel_mode(stand_in("mps"), normal) is None
    monkeypatch.setattr(torch.version, "hip", "6.2", raising=False)
    assert torch_device.kernel_mode(stand_in("cuda"), normal) is None  # ROCm: unverified, host by default
    monkeypatch.setattr(torch.version, "hip", None, raising=False)

    monkeypatch.setattr(torch_device._device, "triton_available", lambda: False)
    with pytest.warns(torch_device.HostFallbackWarning, match="Triton is not installed.*100x slower"):
        assert torch_device.kernel_mode(stand_in("cuda"), normal) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch_device.kernel_mode(stand_in("cuda"), normal) is None  # warned once only
    monkeypatch.setenv("BERRY_TORCH_KERNEL", "triton")
    with pytest.raises(ImportError, match="needs Triton"):
        torch_device.kernel_mode(stand_in("cuda"), normal)

    monkeypatch.setattr(torch_device._device, "triton_available", lambda: True)
    monkeypatch.setenv("BERRY_TORCH_KERNEL", "host")
    assert torch_device.kernel_mode(stand_in("cuda"), normal) is None
    monkeypatch.setenv("BERRY_TORCH_KERNEL", "triton")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        torch_device.kernel_mode(stand_in("cpu"), normal)
    with pytest.raises(RuntimeError, match="got a tensor on mps"):
        torch_device.kernel_mode(stand_in("mps"), normal)
    monkeypatch.setenv("BERRY_TORCH_KERNEL", "gpu")
    with pytest.raises(ValueError, match="BERRY_TORCH_KERNEL='gpu' is not supported; supported: auto, host, triton"):
        init.normal_(torch.empty(2), seed=0, name="w")


def test_importing_berry_torch_imports_no_triton():
    code = "import sys, berry, berry.torch; print('triton' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


# ---- DTensor shards through the kernel: two real processes (gloo) ---------------------------------------
SHARDED = [
    ("normal", (13, 7), torch.bfloat16, functools.partial(init.normal_, mean=0.5, std=2.0, seed=7, name="w")),
    ("trunc_normal", (9, 10), torch.float32, functools.partial(init.trunc_normal_, std=0.02, a=-0.04, b=0.04, seed=7, name="t")),
]


def _sharded_worker(rank: int, world: int, port: int, result_path: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), BERRY_TORCH_KERNEL="triton", TRITON_INTERPRET="1")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor import Shard
        from torch.distributed.tensor import empty as dtensor_empty

        torch.set_num_threads(1)
        mesh = init_device_mesh("cpu", (world,))
        results: dict[str, object] = {"mode": torch_device.kernel_mode(torch.empty(1), InitSpec(std=1.0))}
        for dim in (0, 1):  # Shard(1): every row of the shard is its own run of the global tensor
            for label, shape, dtype, fill in SHARDED:
                tensor = dtensor_empty(shape, dtype=dtype, device_mesh=mesh, placements=[Shard(dim)])
                fill(tensor)
                results[f"{dim}/{label}"] = tensor.full_tensor()
        if rank == 0:
            torch.save(results, result_path)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    leave_worker()


@pytest.mark.slow
@requires_triton
def test_dtensor_shards_through_the_kernel_equal_one_process(tmp_path):
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():  # pragma: no cover
        pytest.skip("torch built without torch.distributed")
    gathered = spawn_gathered(_sharded_worker, 2, tmp_path)
    assert gathered["mode"] == "interpreted"  # the ranks filled their shards with the kernel
    for label, shape, dtype, fill in SHARDED:
        expected = on_host(fill, torch.empty(shape, dtype=dtype))
        for dim in (0, 1):
            assert same_bits(gathered[f"{dim}/{label}"], expected), (dim, label)

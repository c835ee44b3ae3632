"""Prepared GPU check of berry's device kernel (issue 14): the same bits as the CPU, and the speed.

On a CUDA machine, in a few minutes, one run of::

    python benchmarks/gpu_check.py --json gpu_check.json

1. **bits**: every law (normal, truncated normals of several intervals, one-sided and far-tail included,
   uniform, the fan-based rules) and dtype (float64, float32, float16, bfloat16) filled on the GPU through
   ``berry.torch`` and compared, value by value, with the same call on a CPU tensor (berry's host
   kernels); also a region far into a 2**40-element virtual tensor (offsets beyond 2**32), and, with more
   than one GPU, DTensor shards (``Shard(0)``, ``Shard(1)``, NCCL) gathered and compared with one process;
2. **speed**, side by side on the same GPU with CUDA events: berry's ``normal_``, ``uniform_`` and
   ``trunc_normal_`` against ``torch.nn.init.normal_``, ``uniform_``, ``trunc_normal_`` and
   ``torch.randn``, for 256 MiB and 4 GiB tensors, with ``Tensor.fill_`` as the memory-bound reference;
3. **a 7B-parameter skeleton** (a Llama-7B layout, bfloat16): built on meta, ``to_empty(device="cuda")``,
   then initialized end to end with ``torch.nn.init`` and with ``berry.torch.init_model`` (std 0.02),
   with a bit spot check of three parameters against ``berry.sample`` on the host.

It prints a table, checks the targets (bits identical for 100% of values; normal >= 0.8x
``torch.nn.init.normal_``; truncated normal >= 5x ``trunc_normal_``) and writes everything as JSON,
after each section (a run cut short keeps what it measured). Exit status 1 when the bits differ.

Without a GPU, ``--device cpu`` runs the same logic on tiny sizes with the kernel under Triton's
interpreter (``BERRY_TORCH_KERNEL=triton``, ``TRITON_INTERPRET=1``, set here): it tests the script, and
its timings mean nothing (tests/test_triton_gpu_check.py runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

# Run from a checkout without installing: the repository root goes first on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MiB = 1 << 20
BUDGET_S = 280.0  # the whole check stays under five minutes: later sections are skipped past this


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", required=True, help="where to write the results (JSON)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda (the check); cpu: a dry run of the logic under Triton's interpreter")  # fmt: skip
    parser.add_argument("--skip-skeleton", action="store_true", help="leave out the 7B skeleton")
    parser.add_argument("--skip-sharded", action="store_true", help="leave out the DTensor check")
    return parser.parse_args(argv)


class Check:
    """Collects the results, writes the JSON after each section, watches the time budget."""

    def __init__(self, path: str, device: str) -> None:
        self.path, self.device, self.start = path, device, time.perf_counter()
        self.results: dict[str, Any] = {"device": device, "sections_skipped": []}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def section(self, name: str) -> bool:
        if self.elapsed() > BUDGET_S:
            self.results["sections_skipped"].append(f"{name} (time budget of {BUDGET_S:.0f} s spent)")
            self.save()
            return False
        print(f"\n== {name} ({self.elapsed():.0f} s)", flush=True)
        return True

    def save(self) -> None:
        self.results["elapsed_s"] = round(self.elapsed(), 1)
        with open(self.path + ".tmp", "w") as handle:
            json.dump(self.results, handle, indent=2, default=str)
        os.replace(self.path + ".tmp", self.path)


@contextlib.contextmanager
def host_path() -> Iterator[None]:
    """berry's host kernels for the reference values (the dry run routes CPU tensors to the kernel)."""
    saved = os.environ.get("BERRY_TORCH_KERNEL")
    os.environ["BERRY_TORCH_KERNEL"] = "host"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["BERRY_TORCH_KERNEL"]
        else:
            os.environ["BERRY_TORCH_KERNEL"] = saved


def count_launches() -> list[int]:
    """Counts the kernel's launches, so that a silent host fallback shows."""
    from berry.torch import _device as torch_device

    calls: list[int] = []
    real = torch_device._launch

    def counted(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        real(*args, **kwargs)

    torch_device._launch = counted
    return calls


def laws() -> list[tuple[str, Callable[[Any], Any]]]:
    import berry.torch as init

    inf = math.inf
    return [
        ("normal", functools.partial(init.normal_, mean=0.1, std=0.02, seed=1, name="normal")),
        ("trunc_normal [-2, 2]", functools.partial(init.trunc_normal_, std=1.0, seed=1, name="tn")),
        ("trunc_normal [-0.04, 0.03] std 0.02", functools.partial(init.trunc_normal_, std=0.02, a=-0.04, b=0.03, seed=2, name="tn2")),
        ("trunc_normal [1, 4] (mirrored)", functools.partial(init.trunc_normal_, a=1.0, b=4.0, seed=3, name="tn3")),
        ("trunc_normal [3, inf)", functools.partial(init.trunc_normal_, a=3.0, b=inf, seed=4, name="tn4")),
        ("trunc_normal [8, 9] (float64 transform)", functools.partial(init.trunc_normal_, a=8.0, b=9.0, seed=5, name="tn5")),
        ("uniform [-0.5, 0.25)", functools.partial(init.uniform_, a=-0.5, b=0.25, seed=6, name="u")),
        ("kaiming_uniform_", functools.partial(init.kaiming_uniform_, a=math.sqrt(5), seed=7, name="ku")),
        ("xavier_normal_", functools.partial(init.xavier_normal_, seed=8, name="xn")),
    ]  # fmt: skip


def bit_difference(device_tensor: Any, host_tensor: Any) -> int:
    """How many values differ in their bits (-0.0 and 0.0 differ; no NaN is ever made)."""
    import torch

    width = {8: torch.int64, 4: torch.int32, 2: torch.int16}[host_tensor.element_size()]
    return int((device_tensor.cpu().view(width) != host_tensor.view(width)).sum())


def check_bits(check: Check, device: str) -> bool:
    import torch

    from berry import InitSpec, sample
    from berry.torch import _device as torch_device

    shape = (2048, 2049) if device == "cuda" else (3, 37)  # odd rows: no multiple of a block
    dtypes = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    launches = count_launches()
    rows, all_identical = [], True
    for label, fill in laws():
        for dtype_name, dtype in dtypes.items():
            before = len(launches)
            on_device = fill(torch.empty(shape, dtype=dtype, device=device))
            used_kernel = len(launches) > before
            with host_path():
                on_host = fill(torch.empty(shape, dtype=dtype))
            differ = bit_difference(on_device, on_host)
            all_identical &= differ == 0 and used_kernel
            rows.append({"law": label, "dtype": dtype_name, "values": on_host.numel(), "differ": differ,
                         "kernel_used": used_kernel})  # fmt: skip
            print(f"{label:42s} {dtype_name:9s} {'identical' if differ == 0 else f'{differ} DIFFER'}"
                  f"{'' if used_kernel else ' (HOST PATH: kernel not used)'}", flush=True)  # fmt: skip
    # A region far into a 2**40-element virtual tensor: element offsets and Philox blocks beyond 2**32.
    huge, region = (2**30, 2**10), (slice(2**29 + 3, 2**29 + 7), slice(501, 1000))
    for dtype_name in ("float32", "bfloat16"):
        spec = InitSpec(std=0.02, distribution="truncated_normal")
        target = torch.empty((4, 499), dtype=dtypes[dtype_name], device=device)
        mode = "compiled" if device == "cuda" else "interpreted"
        torch_device.fill_block(target, spec, shape=huge, seed=9, name="huge", region=region, mode=mode)
        want = torch.from_numpy(sample(huge, std=0.02, distribution="truncated_normal", seed=9, name="huge",
                                       region=region, dtype=dtype_name).view("int16" if dtype_name == "bfloat16" else "float32"))  # fmt: skip
        differ = int((target.cpu().view(want.dtype) != want).sum())
        all_identical &= differ == 0
        rows.append({"law": "trunc_normal region at 2**39", "dtype": dtype_name, "values": want.numel(), "differ": differ,
                     "kernel_used": True})  # fmt: skip
        print(f"{'trunc_normal, region at offset 2**39':42s} {dtype_name:9s} "
              f"{'identical' if differ == 0 else f'{differ} DIFFER'}", flush=True)  # fmt: skip
    total = sum(row["values"] for row in rows)
    identical = sum(row["values"] - row["differ"] for row in rows if row["kernel_used"])
    check.results["bits"] = {"cases": rows, "values": total, "identical_fraction": identical / total}
    check.save()
    return all_identical


# ---- DTensor shards over several GPUs ------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _shard_worker(rank: int, world: int, port: int, device: str, path: str) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard
    from torch.distributed.tensor import empty as dtensor_empty

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if device == "cuda":
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if device == "cuda" else "gloo", rank=rank, world_size=world)
    try:
        mesh = init_device_mesh(device, (world,))
        gathered = {}
        for dim in (0, 1):
            for label, fill in laws()[:3]:
                tensor = dtensor_empty((37, 45), dtype=torch.bfloat16, device_mesh=mesh, placements=[Shard(dim)])
                fill(tensor)
                gathered[f"Shard({dim}) {label}"] = tensor.full_tensor().cpu()
        if rank == 0:
            torch.save(gathered, path)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # Leave without the interpreter's teardown, which can abort a gloo worker after its results are saved
    # ("terminate called without an active exception"); an exception above still reaches spawn.
    os._exit(0)


def check_sharded(check: Check, device: str) -> bool:
    import torch

    world = min(torch.cuda.device_count(), 4) if device == "cuda" else 2
    if world < 2:
        check.results["sharded"] = "skipped: one GPU"
        print("one GPU: no DTensor check")
        return True
    path = check.path + ".shards.pt"
    torch.multiprocessing.spawn(_shard_worker, args=(world, _free_port(), device, path), nprocs=world, join=True)
    gathered = torch.load(path)
    os.remove(path)
    rows, identical = [], True
    fills = dict(laws()[:3])
    for key, value in gathered.items():
        with host_path():
            expected = fills[key.split(" ", 1)[1]](torch.empty((37, 45), dtype=torch.bfloat16))
        differ = bit_difference(value, expected)
        identical &= differ == 0
        rows.append({"case": key, "world": world, "differ": differ})
        print(f"{key:50s} world {world}: {'identical' if differ == 0 else f'{differ} DIFFER'}")
    check.results["sharded"] = rows
    check.save()
    return identical


# ---- speed ------------------------------------------------------------------------------------------------
def timer(device: str) -> Callable[[Callable[[], Any], int], float]:
    import torch

    def measure(work: Callable[[], Any], repeats: int) -> float:
        """Seconds per call: ``repeats`` calls back to back (as when a model is initialized, so the host's
        per-call work overlaps the device's), the median of three such rounds, after one warm-up call
        (compilation, allocation)."""
        work()
        rounds = []
        for _ in range(1 if device == "cpu" else 3):
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                for _ in range(repeats):
                    work()
                end.record()
                end.synchronize()
                rounds.append(start.elapsed_time(end) / 1000.0 / repeats)
            else:
                begin = time.perf_counter()
                for _ in range(repeats):
                    work()
                rounds.append((time.perf_counter() - begin) / repeats)
        return statistics.median(rounds)

    return measure


def kernel_only(tensor: Any, fill: str) -> Callable[[], None]:
    """berry's kernel launches for ``fill`` on ``tensor`` without the drop-in function's Python dispatch."""
    from berry import InitSpec, stream
    from berry.torch import _device as torch_device

    spec = {
        "normal": InitSpec(std=0.02),
        "uniform": InitSpec(distribution="uniform", low=-math.sqrt(3) * 0.02, high=math.sqrt(3) * 0.02),
        "trunc_normal": InitSpec(std=0.02, distribution="truncated_normal", correct_variance=False),
    }[fill]
    shape = tuple(tensor.shape)
    law = torch_device._law(spec, shape)
    dtype = torch_device._KERNEL_DTYPES[tensor.dtype]
    plan = torch_device._plan(law, dtype, stream.key_for(0, "w"), shape, (0,) * len(shape), shape)
    interpret = tensor.device.type == "cpu"
    return lambda: torch_device._launch(tensor, plan, interpret=interpret)


def check_speed(check: Check, device: str) -> dict[str, float]:
    import torch

    import berry.torch as init

    measure = timer(device)
    sizes = [(256 * MiB, torch.float32), (256 * MiB, torch.bfloat16), (4096 * MiB, torch.float32)]
    if device == "cpu":  # the dry run: a few programs under the interpreter, once each
        sizes = [(16 * 1024, torch.float32)]
    rows, ratios = [], {"normal": [], "trunc_normal": [], "uniform": []}
    for nbytes, dtype in sizes:
        numel = nbytes // torch.empty((), dtype=dtype).element_size()
        tensor = torch.empty(numel, dtype=dtype, device=device)
        repeats = 1 if device == "cpu" else 10 if nbytes <= 256 * MiB else 3
        bound = math.sqrt(3) * 0.02
        work = {
            "fill_ (memory bound)": lambda t=tensor: t.fill_(0.5),
            "torch.randn": lambda n=numel, d=dtype: torch.randn(n, dtype=d, device=device),
            "torch.nn.init.normal_": lambda t=tensor: torch.nn.init.normal_(t, std=0.02),
            "berry normal_": lambda t=tensor: init.normal_(t, std=0.02, seed=0, name="w"),
            "berry normal kernel only": kernel_only(tensor, "normal"),
            "torch.nn.init.uniform_": lambda t=tensor, b=bound: torch.nn.init.uniform_(t, -b, b),
            "berry uniform_": lambda t=tensor, b=bound: init.uniform_(t, -b, b, seed=0, name="w"),
            "torch.nn.init.trunc_normal_": lambda t=tensor: torch.nn.init.trunc_normal_(t, std=0.02, a=-0.04, b=0.04),
            "berry trunc_normal_": lambda t=tensor: init.trunc_normal_(t, std=0.02, a=-0.04, b=0.04, seed=0, name="w"),
            "berry trunc_normal kernel only": kernel_only(tensor, "trunc_normal"),
            "berry uniform kernel only": kernel_only(tensor, "uniform"),
        }
        seconds = {label: measure(fn, repeats) for label, fn in work.items()}
        label = f"{nbytes / MiB:g} MiB {str(dtype).removeprefix('torch.')}"
        for name, value in seconds.items():
            rows.append({"size": label, "method": name, "seconds": value, "GB_per_s": nbytes / value / 1e9})
        for law, torch_name in (("normal", "torch.nn.init.normal_"), ("uniform", "torch.nn.init.uniform_"),
                                ("trunc_normal", "torch.nn.init.trunc_normal_")):  # fmt: skip
            ratios[law].append(seconds[torch_name] / seconds[f"berry {law}_"])
        print(f"\n{label}: GB/s (speed ratio berry / torch)")
        for name, value in seconds.items():
            print(f"  {name:30s} {nbytes / value / 1e9:9.1f} GB/s  {value * 1e3:9.3f} ms")
        for law, values in ratios.items():
            print(f"  berry {law}_ vs torch.nn.init: {values[-1]:.2f}x")
        del tensor
        if device == "cuda":
            torch.cuda.empty_cache()
    summary = {law: min(values) for law, values in ratios.items()}
    check.results["speed"] = {"rows": rows, "worst_ratio_berry_over_torch": summary}
    check.save()
    return summary


# ---- a 7B-parameter skeleton --------------------------------------------------------------------------------
LLAMA_7B = {"layers": 32, "d": 4096, "ffn": 11008, "vocab": 32000}
TINY = {"layers": 2, "d": 32, "ffn": 40, "vocab": 50}


def skeleton(layers: int, d: int, ffn: int, vocab: int) -> Any:
    from torch import nn

    def block() -> nn.Module:
        linear = functools.partial(nn.Linear, bias=False)
        return nn.ModuleDict({
            "attn_norm": nn.RMSNorm(d), "q": linear(d, d), "k": linear(d, d), "v": linear(d, d), "o": linear(d, d),
            "mlp_norm": nn.RMSNorm(d), "gate": linear(d, ffn), "up": linear(d, ffn), "down": linear(ffn, d),
        })  # fmt: skip

    return nn.ModuleDict({
        "embed": nn.Embedding(vocab, d), "layers": nn.ModuleList(block() for _ in range(layers)),
        "norm": nn.RMSNorm(d), "lm_head": nn.Linear(d, vocab, bias=False),
    })  # fmt: skip


def check_skeleton(check: Check, device: str) -> bool:
    import torch
    from torch import nn

    import berry.torch as init
    from berry import sample

    config = LLAMA_7B if device == "cuda" else TINY
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    begin = time.perf_counter()
    with torch.device("meta"):
        model = skeleton(**config).to(torch.bfloat16)
    built = time.perf_counter()
    model.to_empty(device=device)
    sync()
    allocated = time.perf_counter()
    parameters = sum(p.numel() for p in model.parameters())

    def torch_recipe() -> None:
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            elif isinstance(module, nn.RMSNorm):
                nn.init.ones_(module.weight)

    rules = {"Linear:weight": {"std": 0.02}, "Embedding:weight": {"std": 0.02}}  # norms: ones (berry's default)
    timings = {}
    for label, run in (("torch.nn.init", torch_recipe), ("berry init_model", lambda: init.init_model(model, rules, seed=0))):
        sync()
        start = time.perf_counter()
        run()
        sync()
        timings[label] = time.perf_counter() - start
    # Spot check: rows of three parameters against berry.sample on the host.
    named = dict(model.named_parameters())
    middle = f"layers.{config['layers'] // 2}.q.weight"
    differ = 0
    for name in ("embed.weight", middle, "lm_head.weight"):
        rows = (slice(5, 9), slice(None))
        want = sample(tuple(named[name].shape), std=0.02, seed=0, name=name, region=rows, dtype="bfloat16")
        differ += bit_difference(named[name].detach()[rows], torch.from_numpy(want.view("int16")).view(torch.bfloat16))
    result = {
        "config": config, "parameters": parameters, "dtype": "bfloat16", "build_on_meta_s": built - begin,
        "to_empty_s": allocated - built, "init_s": timings, "spot_check_values_differ": differ,
        "speed_ratio_berry_over_torch": timings["torch.nn.init"] / timings["berry init_model"],
    }  # fmt: skip
    print(f"{parameters / 1e9:.2f}B parameters (bfloat16): meta {result['build_on_meta_s']:.2f} s, "
          f"to_empty {result['to_empty_s']:.2f} s")  # fmt: skip
    for label, seconds in timings.items():
        print(f"  {label:20s} {seconds:8.3f} s  ({parameters * 2 / seconds / 1e9:.1f} GB/s)")
    print(f"  spot check against berry.sample: {'identical' if differ == 0 else f'{differ} DIFFER'}")
    check.results["skeleton"] = result
    check.save()
    return differ == 0


def machine(device: str) -> dict[str, Any]:
    import torch

    import berry

    info = {
        "python": platform.python_version(), "torch": torch.__version__, "berry": berry.__version__,
        "platform": platform.platform(), "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
        info["cuda"] = torch.version.cuda
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":  # the dry run: CPU tensors through the kernel under Triton's interpreter
        os.environ["BERRY_TORCH_KERNEL"] = "triton"
        os.environ["TRITON_INTERPRET"] = "1"
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or use --device cpu for a dry run", file=sys.stderr)
        return 2
    check = Check(args.json, args.device)
    check.results["machine"] = machine(args.device)
    print(json.dumps(check.results["machine"]))
    targets: dict[str, Any] = {}
    if check.section("bits: GPU values against the CPU's"):
        targets["bits identical for 100% of values"] = check_bits(check, args.device)
    if not args.skip_sharded and check.section("bits: DTensor shards"):
        targets["DTensor shards identical"] = check_sharded(check, args.device)
    if check.section("speed against torch on the same device"):
        ratios = check_speed(check, args.device)
        targets["normal >= 0.8x torch.nn.init.normal_"] = ratios["normal"] >= 0.8
        targets["truncated normal >= 5x torch.nn.init.trunc_normal_"] = ratios["trunc_normal"] >= 5.0
    if not args.skip_skeleton and check.section("7B skeleton: meta, to_empty, init"):
        targets["7B skeleton spot check identical"] = check_skeleton(check, args.device)
    check.results["targets"] = targets
    check.save()
    print("\n== targets" + (" (dry run on CPU: speed targets mean nothing)" if args.device == "cpu" else ""))
    for target, met in targets.items():
        print(f"  {target:55s} {'met' if met else 'NOT MET'}")
    print(f"results: {args.json} ({check.elapsed():.0f} s)")
    bits_ok = all(met for target, met in targets.items() if "identical" in target)
    return 0 if bits_ok else 1


if __name__ == "__main__":
    sys.exit(main())

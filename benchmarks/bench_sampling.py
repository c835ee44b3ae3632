"""Sampling speed and memory: berry side by side with NumPy, torch.nn.init and jax.random.

One run measures everything on the same machine, so the ratios are comparable:

    python benchmarks/bench_sampling.py            # 16 MiB, 256 MiB, 1 GiB; orthogonal 512..4096; 4 GiB memory
    python benchmarks/bench_sampling.py --quick    # smaller sizes and fewer repeats (a shared machine)

Throughput is GB/s of float32 output (median of repeats that alternate between the libraries,
in-place fills into preallocated, already-touched buffers). Peak memory is read in a fresh subprocess with getrusage. The
Markdown table is printed and written to benchmarks/RESULTS.md (``--output`` to change,
``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from berry import stream  # noqa: E402

MIB = 1 << 20
SETTLE_SECONDS = 0.25


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    return interleaved_medians({"run": run}, repeats)["run"]


def interleaved_medians(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each run; the repeats alternate between the runs so that a machine whose
    load changes over time slows all of them alike (the ratios are what the targets are about)."""
    for run in runs.values():
        run()  # warm-up (JIT compilation, first touch, thread pools)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            # Let the previous library's worker threads (OpenMP, XLA's pool) stop spin-waiting:
            # they would otherwise steal the cores from the next run.
            time.sleep(SETTLE_SECONDS)
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def optional(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def numpy_truncated(rng: np.random.Generator, out: np.ndarray, a: float, b: float) -> None:
    """A plain NumPy baseline for the truncated normal: vectorized rejection from standard_normal."""
    flat = out.reshape(-1)
    missing = np.arange(flat.size)
    while missing.size:
        draw = rng.standard_normal(missing.size, dtype=np.float32)
        keep = (draw >= a) & (draw <= b)
        flat[missing[keep]] = draw[keep]
        missing = missing[~keep]


def throughput_rows(sizes_mib: list[int], repeats: int) -> list[dict[str, object]]:
    torch = optional("torch")
    jax = optional("jax")
    threads = stream.default_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    rows: list[dict[str, object]] = []
    rng = np.random.default_rng(0)
    for size in sizes_mib:
        rows += measure_size(size, repeats, rng, torch, jax)
    return rows


def measure_size(size: int, repeats: int, rng: np.random.Generator, torch, jax) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    n = size * MIB // 4
    out = np.empty(n, dtype=np.float32)
    out.fill(0)
    key = stream.key_for(0, "bench")
    laws = {
        "normal": stream.Normal(0.0, 1.0),
        "truncated normal [-2, 2]": stream.TruncatedNormal(0.0, 1.0, -2.0, 2.0),
        "uniform": stream.Uniform(-1.0, 1.0),
    }
    numpy_runs = {
        "normal": lambda: rng.standard_normal(n, dtype=np.float32, out=out),
        "truncated normal [-2, 2]": lambda: numpy_truncated(rng, out, -2.0, 2.0),
        "uniform": lambda: rng.random(n, dtype=np.float32, out=out),
    }
    torch_runs: dict[str, Callable[[], object]] = {}
    if torch is not None:
        tensor = torch.zeros(n, dtype=torch.float32)
        torch_runs = {
            "normal": lambda: torch.nn.init.normal_(tensor),
            "truncated normal [-2, 2]": lambda: torch.nn.init.trunc_normal_(tensor, a=-2.0, b=2.0),
            "uniform": lambda: torch.nn.init.uniform_(tensor, -1.0, 1.0),
        }
    jax_runs: dict[str, Callable[[], object]] = {}
    if jax is not None:
        import jax.numpy as jnp

        jkey = jax.random.PRNGKey(0)
        normal = jax.jit(lambda k: jax.random.normal(k, (n,), jnp.float32))
        truncated = jax.jit(lambda k: jax.random.truncated_normal(k, -2.0, 2.0, (n,), jnp.float32))
        uniform = jax.jit(lambda k: jax.random.uniform(k, (n,), jnp.float32, -1.0, 1.0))
        jax_runs = {
            "normal": lambda: normal(jkey).block_until_ready(),
            "truncated normal [-2, 2]": lambda: truncated(jkey).block_until_ready(),
            "uniform": lambda: uniform(jkey).block_until_ready(),
        }
    for name, law in laws.items():
        runs: dict[str, Callable[[], object]] = {
            "berry": lambda law=law: stream.fill(out, law, key=key, global_shape=(n,)),
            "numpy": numpy_runs[name],
        }
        if name in torch_runs:
            runs["torch"] = torch_runs[name]
        if name in jax_runs:
            runs["jax"] = jax_runs[name]
        seconds = interleaved_medians(runs, repeats)
        row: dict[str, object] = {"distribution": name, "size": f"{size} MiB"}
        row.update({library: out.nbytes / value / 1e9 for library, value in seconds.items()})
        rows.append(row)
        print(format_throughput_row(row), flush=True)
    return rows


def format_throughput_row(row: dict[str, object]) -> str:
    def cell(key: str) -> str:
        return f"{row[key]:.2f}" if key in row else "-"

    def ratio(key: str) -> str:
        return f"{row['berry'] / row[key]:.1f}x" if key in row else "-"  # type: ignore[operator]

    return (
        f"| {row['distribution']} | {row['size']} | {cell('berry')} | {cell('numpy')} | {cell('torch')} | "
        f"{cell('jax')} | {ratio('numpy')} | {ratio('torch')} | {ratio('jax')} |"
    )


def cpu_time_lines(repeats: int) -> list[str]:
    """ns of CPU time per float32 element on ONE thread (thread_time), berry vs torch vs NumPy.

    A busy shared machine distorts wall-clock GB/s (each library gets whatever share of the cores
    the scheduler grants); the CPU time one thread spends per element is much less sensitive.
    torch.nn.init.normal_/uniform_ run on one thread anyway; berry's default uses every core.
    """
    torch = optional("torch")
    n = 1 << 22
    out = np.zeros(n, dtype=np.float32)
    rng = np.random.default_rng(0)
    key = stream.key_for(0, "cpu")
    cases = [
        ("normal", stream.Normal(0.0, 1.0), lambda: rng.standard_normal(n, dtype=np.float32, out=out)),
        ("truncated normal [-2, 2]", stream.TruncatedNormal(0.0, 1.0, -2.0, 2.0), None),
        ("uniform", stream.Uniform(-1.0, 1.0), lambda: rng.random(n, dtype=np.float32, out=out)),
    ]
    tensor = None
    if torch is not None:
        torch.set_num_threads(1)
        tensor = torch.zeros(n)
    torch_runs = {
        "normal": lambda: torch.nn.init.normal_(tensor),
        "truncated normal [-2, 2]": lambda: torch.nn.init.trunc_normal_(tensor, a=-2.0, b=2.0),
        "uniform": lambda: torch.nn.init.uniform_(tensor, -1.0, 1.0),
    }

    def cpu_ns(run: Callable[[], object]) -> float:
        run()
        times = []
        for _ in range(repeats):
            start = time.thread_time()
            run()
            times.append(time.thread_time() - start)
        return statistics.median(times) / n * 1e9

    lines = []
    for name, law, numpy_run in cases:
        berry_ns = cpu_ns(lambda law=law: stream.fill(out, law, key=key, global_shape=(n,), threads=1))
        numpy_ns = cpu_ns(numpy_run) if numpy_run is not None else float("nan")
        torch_ns = cpu_ns(torch_runs[name]) if tensor is not None else float("nan")
        lines.append(
            f"| {name} | {berry_ns:.2f} | {numpy_ns:.2f} | {torch_ns:.2f} | {torch_ns / berry_ns:.1f}x |"
        )
        print(lines[-1], flush=True)
    if torch is not None:
        torch.set_num_threads(stream.default_threads())
    return lines


KERNEL_LAWS = {
    "normal": stream.Normal(0.0, 0.02),
    "truncated normal [-2, 2]": stream.TruncatedNormal(0.0, 0.02, -2.0, 2.0),
    "uniform": stream.Uniform(-0.05, 0.05),
}


def kernel_rows(sizes_mib: list[int], repeats: int) -> list[str]:
    """berry's float32 fill on each SIMD path against NumPy's ``out.fill(1.0)`` (memory bandwidth), interleaved.

    Issue 14, item 6: the normal laws at >= 25% of a plain memory fill's bandwidth, measured in the same
    run on the same buffer; every path gives the same bits, so only the speed differs.
    """
    if stream._CSTREAM is None:
        return ["| (the C extension is not built) | | | | |"]
    paths = [path for path in stream._CSTREAM.simd_paths() if path != "generic"]
    lines = []
    key = stream.key_for(0, "kernel")
    for size in sizes_mib:
        out = np.empty(size * MIB // 4, dtype=np.float32)
        out.fill(0)
        for name, law in KERNEL_LAWS.items():
            runs: dict[str, Callable[[], object]] = {"fill": lambda out=out: out.fill(1.0)}
            for path in paths:

                def run(path: str = path, law: stream.Law = law, out: np.ndarray = out) -> None:
                    stream._CSTREAM.set_simd(path)
                    stream.fill(out, law, key=key, global_shape=out.shape)

                runs[path] = run
            seconds = interleaved_medians(runs, repeats)
            stream._CSTREAM.set_simd("auto")
            cells = [f"{out.nbytes / seconds['fill'] / 1e9:.2f}"]
            for path in paths:
                cells.append(f"{out.nbytes / seconds[path] / 1e9:.2f} ({seconds['fill'] / seconds[path]:.0%})")
            if "avx512" in paths and "avx2" in paths:
                cells.append(f"{seconds['avx2'] / seconds['avx512']:.2f}x")
            lines.append(f"| {name} | {size} MiB | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    return lines


def kernel_cpu_lines(repeats: int) -> list[str]:
    """ns of CPU time per float32 value on ONE thread (thread_time) for every SIMD path, the portable one too."""
    n = 1 << 22
    out = np.zeros(n, dtype=np.float32)
    key = stream.key_for(0, "kernel-cpu")
    paths = list(stream._CSTREAM.simd_paths())
    lines = []
    for name, law in KERNEL_LAWS.items():
        cells = []
        for path in paths:
            stream._CSTREAM.set_simd(path)
            stream.fill(out, law, key=key, global_shape=(n,), threads=1)
            times = []
            for _ in range(repeats):
                start = time.thread_time()
                stream.fill(out, law, key=key, global_shape=(n,), threads=1)
                times.append(time.thread_time() - start)
            cells.append(f"{statistics.median(times) / n * 1e9:.2f}")
        stream._CSTREAM.set_simd("auto")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def kernel_section(sizes_mib: list[int], repeats: int) -> list[str]:
    paths = [path for path in stream._CSTREAM.simd_paths() if path != "generic"] if stream._CSTREAM else []
    header = "| law | size | numpy fill | " + " | ".join(f"berry {p} (of fill)" for p in paths)
    rule = "|---|---|---|" + "---|" * len(paths)
    if "avx512" in paths and "avx2" in paths:
        header += " | avx512 / avx2"
        rule += "---|"
    section = [
        "## The CPU kernel against a memory fill (GB/s of float32 output, 2 threads; issue 14, item 6)",
        "",
        "Same buffer, same run, interleaved repeats: NumPy's `out.fill(1.0)` is the memory bandwidth a fill",
        "can reach; berry's SIMD paths give the same bits. Target: the normal laws at >= 25% of the fill.",
        "",
        header + " |",
        rule,
    ]
    print("\n".join(section), flush=True)
    section += [*kernel_rows(sizes_mib, repeats), ""]
    all_paths = list(stream._CSTREAM.simd_paths()) if stream._CSTREAM else []
    cpu = [
        "## CPU time per float32 value on one thread, every path (ns, median of thread_time; robust to load)",
        "",
        "| law | " + " | ".join(all_paths) + " |",
        "|---|" + "---|" * len(all_paths),
    ]
    print("\n".join(cpu), flush=True)
    return section + cpu + (kernel_cpu_lines(repeats) if stream._CSTREAM else []) + [""]


def orthogonal_rows(sizes: list[int], repeats: int) -> list[str]:
    torch = optional("torch")
    try:
        from berry.sampling import sample
    except ImportError:
        return ["| (berry.sampling not available) | | | |"]
    lines = []
    for n in sizes:
        runs: dict[str, Callable[[], object]] = {
            "berry": lambda n=n: sample((n, n), init="orthogonal", seed=0, name="q")
        }
        if torch is not None:
            tensor = torch.empty(n, n)
            runs["torch"] = lambda tensor=tensor: torch.nn.init.orthogonal_(tensor)
        seconds = interleaved_medians(runs, repeats)
        berry_s, torch_s = seconds["berry"], seconds.get("torch", float("nan"))
        lines.append(f"| {n} | {berry_s * 1e3:.0f} | {torch_s * 1e3:.0f} | {torch_s / berry_s:.2f}x |")
        print(lines[-1], flush=True)
    return lines


def region_line(n: int, repeats: int) -> str:
    law = stream.Normal(0.0, 1.0)
    full = np.empty((n, n), dtype=np.float32)
    quarter = np.empty((n, n // 4), dtype=np.float32)
    key = stream.key_for(0, "region")
    seconds = interleaved_medians(
        {
            "full": lambda: stream.fill(full, law, key=key, global_shape=(n, n)),
            "quarter": lambda: stream.fill(
                quarter, law, key=key, global_shape=(n, n), region_start=(0, n // 2)
            ),
        },
        repeats,
    )
    full_s, part_s = seconds["full"], seconds["quarter"]
    line = f"| {n}x{n} normal | {full_s * 1e3:.0f} | {part_s * 1e3:.0f} | {part_s / full_s:.2f}x |"
    print(line, flush=True)
    return line


_MEMORY_CODE = """
import resource, sys, time
import numpy as np
from berry import stream


def peak_bytes():
    # VmHWM is this process's own high-water mark (ru_maxrss would include the parent it was forked from)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


n = int(sys.argv[1]) // 4
before = peak_bytes()
out = np.empty(n, dtype=np.float32)
start = time.perf_counter()
stream.fill(out, stream.{law}, key=stream.key_for(0, "memory"), global_shape=(n,))
seconds = time.perf_counter() - start
print(before, peak_bytes(), seconds)
"""


def memory_line(size_gib: float, law: str) -> str:
    size = int(size_gib * (1 << 30))
    code = _MEMORY_CODE.format(law=law)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(size)], capture_output=True, text=True, env=env, check=True
    )
    before, peak, seconds = (float(v) for v in result.stdout.split())
    over = (peak - size) / MIB
    line = (
        f"| {law} | {size_gib:g} GiB | {peak / MIB:.0f} MiB | {before / MIB:.0f} MiB | {over:.0f} MiB | "
        f"{'yes' if over <= 128 else 'NO'} | {size / seconds / 1e9:.2f} |"
    )
    print(line, flush=True)
    return line


def environment() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    for name in ("torch", "jax", "scipy"):
        module = optional(name)
        if module is not None:
            versions.append(f"{name} {module.__version__}")
    simd = stream.backend_info()["simd"] or "-"
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return [
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores, berry threads {stream.default_threads()}",
        f"- load average at start: {', '.join(f'{v:.2f}' for v in load)} (a shared machine inflates all timings alike)",
        f"- berry stream backend: {stream.BACKEND} ({simd}), STREAM_VERSION {stream.STREAM_VERSION}",
        f"- versions: {', '.join(versions)}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--kernel-only", action="store_true", help="only the SIMD paths against a memory fill (its own section)"
    )
    args = parser.parse_args(argv)
    if args.kernel_only:
        sizes = [16, 64] if args.quick else [16, 256, 1024]
        lines = ["# CPU kernel benchmark (benchmarks/bench_sampling.py --kernel-only)", "", *environment(), ""]
        print("\n".join(lines), flush=True)
        lines += kernel_section(sizes, 5 if args.quick else 9)
        if not args.no_write:
            write_section(Path(args.output), "\n".join(lines), KERNEL_START, KERNEL_END)
            print(f"written to {args.output}")
        return
    if args.quick:
        sizes, repeats, orthogonal, region_n, memory_gib = [16, 64], 5, [512, 1024, 2048], 4096, [1.0]
    else:
        sizes, repeats, orthogonal, region_n, memory_gib = (
            [16, 256, 1024],
            5,
            [512, 1024, 2048, 4096],
            8192,
            [4.0],
        )

    lines = ["# Sampling benchmark (benchmarks/bench_sampling.py)", "", *environment(), ""]
    print("\n".join(lines), flush=True)
    header = [
        "## Throughput, float32 (GB/s of output; ratio = berry / other)",
        "",
        "| distribution | size | berry | numpy | torch | jax | vs numpy | vs torch | vs jax |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(header), flush=True)
    rows = throughput_rows(sizes, repeats)
    lines += header + [format_throughput_row(row) for row in rows] + [""]

    def mean_ratio(name: str, other: str) -> float:
        values = [
            float(r["berry"]) / float(r[other]) for r in rows if r["distribution"] == name and other in r
        ]  # type: ignore[arg-type]
        return statistics.median(values) if values else float("nan")

    normal_own = statistics.median(
        float(t["berry"]) / float(n["berry"])  # type: ignore[arg-type]
        for t, n in zip(rows[1::3], rows[0::3], strict=True)
    )
    targets = [
        "## Targets (issue 3, item 8; medians over sizes)",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| normal >= 3x torch.nn.init.normal_ | {mean_ratio('normal', 'torch'):.1f}x | "
        f"{'yes' if mean_ratio('normal', 'torch') >= 3 else 'no'} |",
        f"| truncated >= 40x torch.nn.init.trunc_normal_ | {mean_ratio('truncated normal [-2, 2]', 'torch'):.1f}x | "
        f"{'yes' if mean_ratio('truncated normal [-2, 2]', 'torch') >= 40 else 'no'} |",
        f"| truncated >= 0.8x berry normal | {normal_own:.2f}x | {'yes' if normal_own >= 0.8 else 'no'} |",
        f"| uniform >= 3x torch.nn.init.uniform_ | {mean_ratio('uniform', 'torch'):.1f}x | "
        f"{'yes' if mean_ratio('uniform', 'torch') >= 3 else 'no'} |",
        "",
    ]
    print("\n".join(targets), flush=True)
    lines += targets

    section = [
        "## CPU time per element on one thread (ns, median of thread_time; robust to a busy machine)",
        "",
        "| distribution | berry (1 thread) | numpy | torch (1 thread) | torch / berry |",
        "|---|---|---|---|---|",
    ]
    print("\n".join(section), flush=True)
    lines += section + cpu_time_lines(repeats) + [""]

    section = ["## Orthogonal (ms, median)", "", "| n | berry | torch | torch / berry |", "|---|---|---|---|"]
    print("\n".join(section), flush=True)
    lines += section + orthogonal_rows(orthogonal, max(1, repeats // 2)) + [""]

    section = [
        "## Region: a quarter of the columns vs the full matrix (ms, median; target <= 0.35x)",
        "",
        "| tensor | full | quarter columns | ratio |",
        "|---|---|---|---|",
    ]
    print("\n".join(section), flush=True)
    lines += [*section, region_line(region_n, repeats), ""]

    section = [
        "## Peak memory (fresh subprocess, VmHWM; target: size + 128 MiB)",
        "",
        "| law | tensor | peak RSS | peak RSS before allocating | peak - tensor | within target | GB/s |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(section), flush=True)
    lines += section + [memory_line(g, "Normal(0.0, 1.0)") for g in memory_gib]
    lines += [memory_line(g, "TruncatedNormal(0.0, 1.0, -2.0, 2.0)") for g in memory_gib] + [""]
    if not args.no_write:
        write_section(Path(args.output), "\n".join(lines))
        print(f"written to {args.output}")


START, END = "<!-- bench_sampling: start -->", "<!-- bench_sampling: end -->"
KERNEL_START, KERNEL_END = "<!-- bench_sampling kernel: start -->", "<!-- bench_sampling kernel: end -->"


def write_section(path: Path, text: str, start: str = START, end: str = END) -> None:
    """Replace this benchmark's section of the results file, keeping whatever else is in it."""
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.exists() else ""
    if start in old and end in old:
        before, rest = old.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        new = before + block + ("\n" + after if after else "")
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + block
    path.write_text(new)


if __name__ == "__main__":
    main()

"""berry's orthogonal initializer against ``torch.nn.init.orthogonal_``, side by side in one run.

    python benchmarks/bench_orthogonal.py [SIZES] [REPEATS]      # default 512,1024,2048,4096 and 7

Two tables: wall clock with 2 threads (berry's BLAS and stream use all cores; torch set to 2
threads), and CPU time with one thread each (run with ``OPENBLAS_NUM_THREADS=1`` for berry's
BLAS; steadier on a busy machine). Float32 n x n, calls interleaved, medians (and minima).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np
import torch

import berry


def main() -> None:
    sizes = [int(a) for a in sys.argv[1].split(",")] if len(sys.argv) > 1 else [512, 1024, 2048, 4096]
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    one_thread = os.environ.get("OPENBLAS_NUM_THREADS") == "1"
    torch.set_num_threads(1 if one_thread else 2)
    clock = time.thread_time if one_thread else time.perf_counter
    print(f"berry {berry.__version__} from {os.path.dirname(berry.__file__)}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); clock {clock.__name__}; load {os.getloadavg()}")
    print("| n | berry ms | torch ms | torch / berry | berry min | torch min |\n|---|---|---|---|---|---|")
    for n in sizes:
        tensor = torch.empty(n, n)
        runs = {
            "berry": lambda n=n: berry.sample((n, n), init="orthogonal", seed=0, name="q", threads=1 if one_thread else None),
            "torch": lambda tensor=tensor: torch.nn.init.orthogonal_(tensor),
        }
        times: dict[str, list[float]] = {key: [] for key in runs}
        for run in runs.values():
            run()  # warm up
        for _ in range(repeats if n < 4096 else max(3, repeats // 2)):
            for key, run in runs.items():
                start = clock()
                run()
                times[key].append(clock() - start)
        b, t = (1e3 * float(np.median(times[key])) for key in ("berry", "torch"))
        print(f"| {n} | {b:.0f} | {t:.0f} | {t / b:.2f}x | {1e3 * min(times['berry']):.0f} | {1e3 * min(times['torch']):.0f} |",
              flush=True)


if __name__ == "__main__":
    main()

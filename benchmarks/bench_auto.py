"""auto_init: plan time and memory, side by side with init_model and torch's reset_parameters.

Models: nanoGPT's layout (``berry.torch.auto.zoo.GPT``, tied ``wte``/``lm_head``):

* ``gpt2``: GPT-2 small, 124M parameters (12 layers, width 768, vocab 50257, context 1024);
* ``1b``: a 1.0B-parameter decoder (18 layers, width 2048, 16 heads, vocab 50257, context 2048);
* ``zoo``: every model of ``berry.torch.auto.zoo`` (small; plan and apply times).

Methods, each in its own subprocess so that its peak memory is its own:

* ``auto-plan``: ``auto_plan`` on the model built on ``torch.device("meta")``
  with a token-id ``InputSpec`` (record, analyze, propagate, decide: no
  sampling, no values). A small plan runs first so that the one-time imports
  torch makes on the first meta op are not counted (reported apart as ``cold``);
  the first plan is timed, then the best of 3 more (quadratures cached);
* ``auto-init``: the plan, then ``to_empty(device="cpu")`` and ``report.apply``;
* ``init-model``: ``init_model`` with GPT's recipe as rules (the sampling alone);
* ``reset-parameters``: every module's ``reset_parameters()`` (torch's defaults).

Memory is the process's peak resident set (``ru_maxrss``) minus its resident
set just before the timed part, compared with the model's own size.

Usage::

    python benchmarks/bench_auto.py                      # gpt2, 1b and the zoo, all methods
    python benchmarks/bench_auto.py --models gpt2        # just GPT-2 small
    python benchmarks/bench_auto.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODELS = {
    "gpt2": {"vocab": 50257, "block": 1024, "layers": 12, "d": 768, "heads": 12},
    "1b": {"vocab": 50257, "block": 2048, "layers": 18, "d": 2048, "heads": 16},
}
METHODS = ("auto-plan", "auto-init", "init-model", "reset-parameters")


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _gpt_rules(layers: int) -> dict[str, object]:
    return {"*.c_proj.weight": {"std": 0.02 / math.sqrt(2 * layers)}, "Linear:weight": {"std": 0.02},
            "Embedding:weight": {"std": 0.02}, "*.bias": "zeros"}


def run_one(model_name: str, method: str) -> dict[str, object]:
    """Build on meta, then time ``method`` (runs inside the child process)."""
    import torch

    import berry.torch
    from berry.torch.auto import InputSpec, auto_plan
    from berry.torch.auto.zoo import GPT

    torch.set_num_threads(2)
    config = MODELS[model_name]
    with torch.device("meta"):
        warm = GPT(vocab=64, block=8, layers=1, d=16, heads=2)
    start = time.perf_counter()
    auto_plan(warm, InputSpec((1, 8), dtype=torch.long))  # first meta ops import torch's decompositions
    cold = time.perf_counter() - start
    with torch.device("meta"):
        model = GPT(**config)
    n_params = sum(p.numel() for p in model.parameters())
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    spec = InputSpec((1, config["block"]), dtype=torch.long)
    baseline = _rss_bytes()
    plan_seconds = apply_seconds = 0.0
    start = time.perf_counter()
    if method in ("auto-plan", "auto-init"):
        report = auto_plan(model, spec)
        plan_seconds = time.perf_counter() - start
        if method == "auto-plan":  # again, with the quadratures cached: the cost of recording and propagating
            repeats = []
            for _ in range(3):
                begin = time.perf_counter()
                auto_plan(model, spec)
                repeats.append(time.perf_counter() - begin)
            apply_seconds = min(repeats)
        if method == "auto-init":
            model.to_empty(device="cpu")
            model.lm_head.weight = model.transformer["wte"].weight
            begin = time.perf_counter()
            report.apply(model)
            apply_seconds = time.perf_counter() - begin
    else:
        model.to_empty(device="cpu")
        model.lm_head.weight = model.transformer["wte"].weight
        start = time.perf_counter()
        if method == "init-model":
            berry.torch.init_model(model, _gpt_rules(config["layers"]), seed=0)
        elif method == "reset-parameters":
            for module in model.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        else:
            raise ValueError(f"method={method!r}; choose from {METHODS}")
    seconds = plan_seconds if method == "auto-plan" else time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"model": model_name, "method": method, "parameters": n_params, "model_mb": model_bytes / 2**20,
            "seconds": seconds, "plan_seconds": plan_seconds, "apply_seconds": apply_seconds, "cold_seconds": cold,
            "peak_over_baseline_mb": (peak - baseline) / 2**20, "threads": torch.get_num_threads()}


def run_zoo() -> list[dict[str, object]]:
    """Plan and apply time of every zoo model against init_model's structural defaults and reset_parameters.

    ``init_model(model, {})``: the sampling alone with the structural defaults (Xavier, ones, zeros), since
    ``init_model(model)`` without rules now plans like ``auto_init`` itself.
    """
    import torch

    from berry.torch import init_model
    from berry.torch.auto import auto_init, auto_plan
    from berry.torch.auto.zoo import ZOO, build

    torch.set_num_threads(2)
    model, inputs = build("gpt")
    auto_plan(model, *inputs)  # warm up the one-time imports
    rows = []
    for name in ZOO:
        model, inputs = build(name)
        start = time.perf_counter()
        auto_plan(model, *inputs)
        plan = time.perf_counter() - start
        start = time.perf_counter()
        auto_init(model, *inputs, measure=False)
        auto = time.perf_counter() - start
        start = time.perf_counter()
        init_model(model, {}, seed=0)
        default = time.perf_counter() - start
        start = time.perf_counter()
        for module in model.modules():
            if hasattr(module, "reset_parameters") and module is not model:
                module.reset_parameters()
        reset = time.perf_counter() - start
        rows.append({"model": name, "parameters": sum(p.numel() for p in model.parameters()), "plan_seconds": plan,
                     "auto_init_seconds": auto, "init_model_seconds": default, "reset_parameters_seconds": reset})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[*MODELS, "zoo"], choices=[*MODELS, "zoo"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--zoo-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(*args.child)))
        return
    if args.zoo_child:
        print(json.dumps(run_zoo()))
        return
    results: list[dict[str, object]] = []
    header = f"{'model':6} {'method':17} {'params':>8} {'model MB':>9} {'seconds':>8} {'plan s':>7} " \
             f"{'apply s*':>8} {'cold s':>7} {'peak-base MB':>12}"
    for model_name in [m for m in args.models if m != "zoo"]:
        print(header)
        for method in args.methods:
            child = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", model_name, method],
                                   check=True, capture_output=True, text=True)
            row = json.loads(child.stdout.strip().splitlines()[-1])
            results.append(row)
            print(f"{row['model']:6} {row['method']:17} {row['parameters'] / 1e6:7.1f}M {row['model_mb']:9.0f} "
                  f"{row['seconds']:8.2f} {row['plan_seconds']:7.3f} {row['apply_seconds']:8.2f} "
                  f"{row['cold_seconds']:7.2f} {row['peak_over_baseline_mb']:12.0f}", flush=True)
    if any(m != "zoo" for m in args.models):
        print("plan s: the first plan in the process (quadratures computed); apply s*: report.apply for auto-init, "
              "the best of 3 repeated plans (quadratures cached) for auto-plan; cold s: a tiny plan run first to "
              "pay torch's one-time imports")
    if "zoo" in args.models:
        child = subprocess.run([sys.executable, os.path.abspath(__file__), "--zoo-child"], check=True,
                               capture_output=True, text=True)
        rows = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{'zoo model':20} {'params':>9} {'plan s':>7} {'auto_init s':>11} {'init_model s':>12} "
              f"{'reset s':>8} {'auto/init_model':>15}")
        for row in rows:
            ratio = row["auto_init_seconds"] / max(row["init_model_seconds"], 1e-9)
            print(f"{row['model']:20} {row['parameters']:9,} {row['plan_seconds']:7.3f} "
                  f"{row['auto_init_seconds']:11.3f} {row['init_model_seconds']:12.3f} "
                  f"{row['reset_parameters_seconds']:8.3f} {ratio:15.2f}")
        results += [{"zoo": True, **row} for row in rows]
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()

"""Initialize GPT-sized decoders on CPU three ways: time and peak memory.

Models (decoder skeletons with GPT-2's parameter layout, no forward pass needed):

* ``gpt2``: GPT-2 small, 124M parameters (12 layers, width 768, vocab 50257);
* ``1b``: a 1.0B-parameter decoder (18 layers, width 2048, vocab 50257).

Methods, each run in its own subprocess so that its peak memory is its own:

* ``torch-default``: every module's ``reset_parameters()`` (torch's defaults);
* ``torch-gpt``: the GPT recipe with ``torch.nn.init``: weights
  ``trunc_normal_(std=0.02, a=-0.04, b=0.04)``, residual projections
  ``std=0.02/sqrt(2 * n_layer)``, embeddings ``normal_(std=0.02)``, biases zero,
  LayerNorm ones/zeros;
* ``berry``: the same recipe with :func:`berry.torch.init_model` (keyed by
  parameter name, filled in place).

Every method starts from the same state: the model built on
``torch.device("meta")`` and materialized with ``to_empty(device="cpu")``, so
the timed part is initialization only. Memory is the process's peak resident
set (``ru_maxrss``) minus its resident set just before ``to_empty`` (Python,
torch and berry loaded), compared with the model's own size.

Usage::

    python benchmarks/bench_torch_models.py                  # both models, all methods
    python benchmarks/bench_torch_models.py --models gpt2    # just GPT-2 small
    python benchmarks/bench_torch_models.py --json out.json  # also write the numbers
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

# Run from a checkout without installing: the repository root goes first on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODELS = {
    "gpt2": {"n_layer": 12, "d": 768, "vocab": 50257, "n_ctx": 1024},
    "1b": {"n_layer": 18, "d": 2048, "vocab": 50257, "n_ctx": 2048},
}
METHODS = ("torch-default", "torch-gpt", "berry")


def build_decoder(n_layer: int, d: int, vocab: int, n_ctx: int):  # type: ignore[no-untyped-def]
    from torch import nn

    def block() -> nn.Module:
        return nn.ModuleDict(
            {
                "ln_1": nn.LayerNorm(d),
                "attn": nn.ModuleDict({"c_attn": nn.Linear(d, 3 * d), "c_proj": nn.Linear(d, d)}),
                "ln_2": nn.LayerNorm(d),
                "mlp": nn.ModuleDict({"c_fc": nn.Linear(d, 4 * d), "c_proj": nn.Linear(4 * d, d)}),
            }
        )

    model = nn.ModuleDict(
        {
            "wte": nn.Embedding(vocab, d),
            "wpe": nn.Embedding(n_ctx, d),
            "h": nn.ModuleList(block() for _ in range(n_layer)),
            "ln_f": nn.LayerNorm(d),
        }
    )
    return model


def gpt_rules(n_layer: int) -> dict[str, object]:
    """The GPT recipe as berry rules (a plain dict, as it would sit in a config file)."""
    bound = 2.0  # truncation at +-2 std, in std units
    truncated = {"distribution": "truncated_normal", "bounds": [-bound, bound], "correct_variance": False}
    return {
        "*.c_proj.weight": {"std": 0.02 / math.sqrt(2 * n_layer), **truncated},
        "Linear:weight": {"std": 0.02, **truncated},
        "Embedding:weight": {"std": 0.02},
        "*.bias": "zeros",
    }


def torch_gpt_recipe(model, n_layer: int) -> None:  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj") else 0.02
            nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    torch.cpu.synchronize()


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run_one(model_name: str, method: str) -> dict[str, object]:
    """Build on meta, materialize, initialize with ``method``; runs inside the child process."""
    import torch
    from torch import nn

    import berry.torch

    config = MODELS[model_name]
    with torch.device("meta"):
        model = build_decoder(**config)
    n_params = sum(p.numel() for p in model.parameters())
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    baseline = _rss_bytes()
    model.to_empty(device="cpu")

    start = time.perf_counter()
    if method == "torch-default":
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding, nn.LayerNorm)):
                module.reset_parameters()
    elif method == "torch-gpt":
        torch_gpt_recipe(model, config["n_layer"])
    elif method == "berry":
        berry.torch.init_model(model, gpt_rules(config["n_layer"]), seed=0)
    else:
        raise ValueError(f"method={method!r}; choose from {METHODS}")
    seconds = time.perf_counter() - start

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    checksum = float(sum(p.detach().double().abs().sum() for p in model.parameters()))
    return {
        "model": model_name,
        "method": method,
        "parameters": n_params,
        "model_mb": model_bytes / 2**20,
        "seconds": seconds,
        "peak_over_baseline_mb": (peak - baseline) / 2**20,
        "peak_over_model": (peak - baseline) / model_bytes,
        "threads": torch.get_num_threads(),
        "checksum": checksum,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(*args.child)))
        return

    results = []
    print(f"{'model':6} {'method':14} {'params':>8} {'model MB':>9} {'seconds':>8} {'peak-base MB':>12} {'/model':>7}")
    for model_name in args.models:
        for method in args.methods:
            child = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", model_name, method],
                check=True, capture_output=True, text=True,
            )
            row = json.loads(child.stdout.strip().splitlines()[-1])
            results.append(row)
            print(
                f"{row['model']:6} {row['method']:14} {row['parameters'] / 1e6:7.1f}M {row['model_mb']:9.0f} "
                f"{row['seconds']:8.2f} {row['peak_over_baseline_mb']:12.0f} {row['peak_over_model']:7.3f}",
                flush=True,
            )
        by_method = {row["method"]: row for row in results if row["model"] == model_name}
        if "torch-gpt" in by_method and "berry" in by_method:
            speedup = by_method["torch-gpt"]["seconds"] / by_method["berry"]["seconds"]
            print(f"{model_name}: berry is {speedup:.1f}x faster than the torch.nn.init GPT recipe")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()

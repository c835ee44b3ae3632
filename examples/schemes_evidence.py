"""Small CPU experiments showing that berry's whole-network schemes do what their papers promise.

Run from the repository root::

    .venv/bin/python examples/schemes_evidence.py            # about a minute on one core
    .venv/bin/python examples/schemes_evidence.py --quick    # smaller versions (the slow tests' sizes)

It prints four Markdown tables (recorded in docs/schemes.md):

1. DeepNorm (Wang et al. 2022): a 100-layer post-LN transformer. With torch's
   default initialization one Adam step changes the model's output by more
   than its own size and the loss barely moves; with DeepNorm (alpha, beta)
   the update stays a fraction of the output, as at depth 6, and the loss falls.
2. Fixup (Zhang et al. 2019): a 100-block residual MLP without normalization,
   trained with SGD at a learning rate where the default initialization
   diverges (NaN); with Fixup the loss falls.
3. LSUV (Mishkin & Matas 2016): every layer's output std is 1 within the
   tolerance, measured afresh after initialization.
4. GPT-2 (Radford et al. 2019): the residual stream's std stays flat with
   depth with the 1/sqrt(2N) residual scaling, and grows without it.

Every number comes from fixed seeds, so the tables are reproducible.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from berry.torch import init_model, schemes
from berry.torch.models import ResidualMLP, ResNet, Transformer


# ----------------------------------------------------------------------------- DeepNorm
def deepnorm_evidence(
    depths: Sequence[int] = (6, 100),
    *,
    width: int = 64,
    steps: int = 6,
    lr: float = 5e-4,
    seq: int = 16,
    batch: int = 8,
    vocab: int = 64,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Post-LN transformers, default init vs DeepNorm: output change after one Adam step, gradients, loss."""
    rows = []
    generator = torch.Generator().manual_seed(seed + 1)
    idx = torch.randint(0, vocab, (batch, seq), generator=generator)
    targets = torch.roll(idx, -1, dims=1)
    for depth in depths:
        for init in ("default", "deepnet"):
            torch.manual_seed(seed)  # torch's default initialization draws from the global generator
            model = Transformer(
                n_layer=depth, n_embd=width, n_head=4, norm="post", naming="fairseq",
                vocab_size=vocab, block_size=seq, ffn_mult=2,
            )
            alpha = 1.0
            if init == "deepnet":
                report = schemes.deepnet(model, seed=seed)
                alpha = report.constants["decoder_alpha"]
                model.set_residual_scale(alpha)
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            with torch.no_grad():
                before = model(idx)
            losses, update, grad_ratio = [], math.nan, math.nan
            for step in range(steps):
                loss = F.cross_entropy(model(idx).reshape(-1, vocab), targets.reshape(-1))
                optimizer.zero_grad()
                loss.backward()
                if step == 0:  # gradient reaching the bottom layer relative to the top one
                    first, last = model.blocks[0].fc1.weight.grad, model.blocks[-1].fc1.weight.grad
                    assert first is not None and last is not None
                    grad_ratio = float(first.norm() / last.norm())
                optimizer.step()
                losses.append(float(loss.detach()))
                if step == 0:
                    with torch.no_grad():
                        update = float((model(idx) - before).norm() / before.norm())
            with torch.no_grad():
                final = float(F.cross_entropy(model(idx).reshape(-1, vocab), targets.reshape(-1)))
            rows.append(
                {"depth": depth, "init": init, "alpha": alpha, "update": update, "grad_ratio": grad_ratio,
                 "loss_start": losses[0], "loss_end": final, "steps": steps}
            )
    return rows


# ----------------------------------------------------------------------------- Fixup
def _classification_data(n: int = 256, d: int = 16, classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator)
    teacher = torch.randn(d, classes, generator=generator)
    return x, (x @ teacher).argmax(dim=1)


def fixup_evidence(
    *,
    depth: int = 100,
    width: int = 64,
    lrs: Sequence[float] = (0.1, 0.03),
    steps: int = 30,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Residual MLP without normalization, SGD (momentum 0.9): torch default, He, Fixup."""
    x, y = _classification_data(seed=seed)
    frequencies = torch.bincount(y, minlength=10).double() / len(y)
    prior = float(-(frequencies[frequencies > 0] * frequencies[frequencies > 0].log()).sum())
    rows = []
    for lr in lrs:
        for init in ("default", "he", "fixup"):
            torch.manual_seed(seed)
            model = ResidualMLP(in_features=16, width=width, depth=depth, branch_layers=2, out_features=10,
                                fixup=init == "fixup")
            if init == "fixup":
                schemes.fixup(model, seed=seed)
            elif init == "he":  # the standard init without Fixup's rescaling
                import berry.torch as init_fns

                for name, parameter in model.named_parameters():
                    if parameter.dim() >= 2:
                        init_fns.kaiming_normal_(parameter, nonlinearity="relu", seed=seed, name=name)
                    else:
                        init_fns.zeros_(parameter)
            optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
            with torch.no_grad():
                start = float(F.cross_entropy(model(x), y))
            for step in range(steps):
                rows_of_batch = torch.arange(step * 64, step * 64 + 64) % len(x)
                loss = F.cross_entropy(model(x[rows_of_batch]), y[rows_of_batch])
                if not torch.isfinite(loss):
                    break
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                end = float(F.cross_entropy(model(x), y))
            rows.append({"lr": lr, "init": init, "loss_start": start, "loss_end": end, "steps": steps, "depth": depth,
                         "prior": prior})
    return rows


# ----------------------------------------------------------------------------- LSUV
def _layer_output_stds(model: torch.nn.Module, batch: torch.Tensor) -> dict[str, float]:
    stds: dict[str, float] = {}

    def record(name: str) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
            stds.setdefault(name, float(output.double().std()))

        return hook

    hooks = [
        module.register_forward_hook(record(name))
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d))
    ]
    with torch.no_grad():
        model(batch)
    for hook in hooks:
        hook.remove()
    return stds


def lsuv_evidence(*, tol: float = 0.1, seed: int = 0, small: bool = False) -> list[dict[str, Any]]:
    """Output std of every layer under torch's default init and after LSUV, measured independently."""
    generator = torch.Generator().manual_seed(seed)
    layers = [torch.nn.Linear(32, 128), torch.nn.Tanh()]
    for _ in range(6 if small else 20):
        layers += [torch.nn.Linear(128, 128), torch.nn.Tanh()]
    cases = [
        ("tanh MLP", torch.nn.Sequential(*layers, torch.nn.Linear(128, 10)), torch.randn(256, 32, generator=generator)),
        ("residual MLP", ResidualMLP(in_features=32, width=128, depth=4 if small else 10, out_features=10),
         torch.randn(256, 32, generator=generator)),
        ("ResNet (no norm)", ResNet(blocks_per_stage=(1, 1) if small else (2, 2), width=16, norm="none"),
         torch.randn(32, 3, 16, 16, generator=generator)),
    ]
    rows = []
    for label, model, batch in cases:
        torch.manual_seed(seed)
        default = _layer_output_stds(model, batch)
        report = schemes.lsuv(model, batch, seed=seed, tol=tol)
        after = _layer_output_stds(model, batch)
        rows.append(
            {"model": label, "layers": len(after), "default_min": min(default.values()),
             "default_max": max(default.values()), "lsuv_min": min(after.values()), "lsuv_max": max(after.values()),
             "within_tol": all(abs(s * s - 1) < tol for s in after.values()),
             "iterations": sum(r.iterations for r in report.layers)}
        )
    return rows


# ----------------------------------------------------------------------------- GPT-2
def gpt2_evidence(
    depths: Sequence[int] = (2, 8, 32, 96), *, width: int = 64, seq: int = 16, batch: int = 8, seed: int = 0
) -> list[dict[str, Any]]:
    """Std of the residual stream after the last block: GPT-2's scaled residual projections vs unscaled."""
    idx = torch.randint(0, 64, (batch, seq), generator=torch.Generator().manual_seed(seed))
    rows = []
    for depth in depths:
        row: dict[str, Any] = {"depth": depth}
        for label in ("gpt2", "unscaled"):
            model = Transformer(n_layer=depth, n_embd=width, n_head=4, block_size=seq)
            if label == "gpt2":
                schemes.gpt2(model, seed=seed)
            else:  # the same recipe without the residual factor: every weight N(0, 0.02^2)
                init_model(model, {"Linear:weight": {"std": 0.02}, "Embedding:weight": {"std": 0.02},
                                   "Linear:bias": "zeros"}, seed=seed)
            with torch.no_grad():
                x = model.embed(idx)
                for block in model.blocks:
                    x = block(x)
            row[label] = float(x.std())
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- printing
def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _f(value: float, digits: int = 3) -> str:
    return "NaN" if math.isnan(value) else f"{value:.{digits}g}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller experiments (the slow tests' sizes)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    quick = args.quick

    print("## DeepNorm: post-LN transformer, one Adam step (lr 5e-4) and a few more\n")
    rows = deepnorm_evidence(depths=(6, 50) if quick else (6, 100), steps=3 if quick else 4)
    print(_table(
        ["layers", "init", "alpha", "output change after 1 step", "grad bottom/top", "loss start", "loss end"],
        [[r["depth"], r["init"], _f(r["alpha"]), _f(r["update"]), _f(r["grad_ratio"]), _f(r["loss_start"]),
          f"{_f(r['loss_end'])} ({r['steps']} steps)"] for r in rows],
    ))

    print("\n## Fixup: residual MLP without normalization, SGD with momentum 0.9\n")
    rows = fixup_evidence(steps=10 if quick else 30, lrs=(0.1,) if quick else (0.1, 0.03))
    print(f"(loss of predicting the class frequencies, i.e. learning nothing: {rows[0]['prior']:.3f})\n")
    print(_table(
        ["blocks", "lr", "init", "loss start", "loss end"],
        [[r["depth"], r["lr"], r["init"], _f(r["loss_start"]), f"{_f(r['loss_end'])} ({r['steps']} steps)"]
         for r in rows],
    ))

    print("\n## LSUV (tol 0.1 on the variance): every layer's output std, measured after initialization\n")
    rows = lsuv_evidence(small=quick)
    print(_table(
        ["model", "layers", "torch default: std min..max", "LSUV: std min..max", "all within tol", "rescalings"],
        [[r["model"], r["layers"], f"{_f(r['default_min'])}..{_f(r['default_max'])}",
          f"{r['lsuv_min']:.4f}..{r['lsuv_max']:.4f}", "yes" if r["within_tol"] else "NO", r["iterations"]]
         for r in rows],
    ))

    print("\n## GPT-2: std of the residual stream after the last block\n")
    rows = gpt2_evidence(depths=(2, 8, 32) if quick else (2, 8, 32, 96))
    print(_table(
        ["layers", "GPT-2 (0.02/sqrt(2N))", "unscaled (0.02)"],
        [[r["depth"], _f(r["gpt2"]), _f(r["unscaled"])] for r in rows],
    ))
    print(f"\n(total {time.perf_counter() - started:.0f} s, torch {torch.__version__}, 1 thread)")


if __name__ == "__main__":
    main()

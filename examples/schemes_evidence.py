"""Small CPU experiments showing that berry's whole-network schemes do what their papers promise.

Run from the repository root::

    python examples/schemes_evidence.py                          # print the Markdown section
    python examples/schemes_evidence.py --write docs/schemes.md  # regenerate it in the docs
    python examples/schemes_evidence.py --check docs/schemes.md  # exit 1 if the docs are stale
    python examples/schemes_evidence.py --quick                  # smaller versions (the slow tests' sizes)

It writes the "Evidence at small scale" tables of docs/schemes.md, between
the BEGIN/END markers, and the sentences that cite their numbers (each
checked against the numbers before it is written):

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
5. muP (Yang et al. 2021): berry's stds and Adam learning-rate multipliers
   across widths (tests/test_schemes.py compares them with the mup package).

Every number comes from fixed seeds on one thread, so the output is the same
on every run with the same torch (the version is printed with it).
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
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
        for init in ("default", "deepnorm"):
            torch.manual_seed(seed)  # torch's default initialization draws from the global generator
            model = Transformer(
                n_layer=depth, n_embd=width, n_head=4, norm="post", naming="fairseq",
                vocab_size=vocab, block_size=seq, ffn_mult=2,
            )
            alpha = 1.0
            if init == "deepnorm":
                report = schemes.deepnorm(model, seed=seed)
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


# ----------------------------------------------------------------------------- muP
def mup_evidence(widths: Sequence[int] = (64, 256, 1024), *, base: int = 32, seed: int = 0) -> list[dict[str, Any]]:
    """berry's muP numbers for an MLP (8 -> width -> width -> 10) at several widths over a base width."""

    def net(width: int) -> torch.nn.Module:
        model = torch.nn.Module()
        model.stem, model.hidden = torch.nn.Linear(8, width), torch.nn.Linear(width, width)
        model.head = torch.nn.Linear(width, 10)
        return model

    rows = []
    for width in widths:
        with torch.device("meta"):
            base_model = net(base)
        report = schemes.mup(net(width), base_model, seed=seed, readout_init="scaled", roles={"readout": "head.weight"})
        treatment = report.parameters
        rows.append({"width": width, "r": width / base, "hidden_std": treatment["hidden.weight"].std,
                     "readout_std": treatment["head.weight"].std,
                     "adam_hidden": treatment["hidden.weight"].adam_lr_mult,
                     "adam_input": treatment["stem.weight"].adam_lr_mult})
    return rows


# ----------------------------------------------------------------------------- the document
BEGIN = "<!-- BEGIN generated by examples/schemes_evidence.py: do not edit by hand -->"
END = "<!-- END generated by examples/schemes_evidence.py -->"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _f(value: float, digits: int = 3) -> str:
    return "NaN" if math.isnan(value) else f"{value:.{digits}g}"


def _claim(holds: bool, sentence: str) -> str:
    """A sentence of the document, written only if the numbers it summarizes bear it out."""
    if not holds:
        raise AssertionError(f"the numbers no longer support this sentence of docs/schemes.md: {sentence!r}")
    return sentence


def render(quick: bool = False) -> str:
    """The evidence section of docs/schemes.md: every number and every sentence that cites one."""
    out: list[str] = []
    depths = (6, 50) if quick else (6, 100)
    steps = 3 if quick else 4
    deep = depths[-1]
    rows = deepnorm_evidence(depths=depths, steps=steps)
    by = {(r["depth"], r["init"]): r for r in rows}
    out += [
        f"### DeepNorm: post-LN transformer, one Adam step (lr 5e-4) and {steps - 1} more",
        "",
        "Width 64, 4 heads, sequences of 16 tokens, batch 8; \"default\" is torch's default initialization with the",
        "plain residual. \"output change\" is ‖f(x; θ₁) − f(x; θ₀)‖ / ‖f(x; θ₀)‖ after one Adam step (the paper's",  # noqa: RUF001
        "model-update measure); \"grad bottom/top\" the gradient norm of the first layer's `fc1` over the last one's.",
        "",
        _table(
            ["layers", "init", "alpha", "output change after 1 step", "grad bottom/top", "loss start", "loss end"],
            [[r["depth"], r["init"], _f(r["alpha"]), _f(r["update"]), _f(r["grad_ratio"]), _f(r["loss_start"]),
              f"{_f(r['loss_end'])} ({r['steps']} steps)"] for r in rows],
        ),
        "",
    ]
    default, deepnorm_row = by[deep, "default"], by[deep, "deepnorm"]
    growth = default["update"] / by[depths[0], "default"]["update"]
    out += [_claim(
        default["update"] > 4 * deepnorm_row["update"] and growth > 4 and 0.5 < deepnorm_row["grad_ratio"] < 2
        and deepnorm_row["loss_end"] < default["loss_end"],
        f"At {deep} layers one step moves the default model's output by {_f(default['update'])} times its size "
        f"({_f(growth, 2)} times its update at {depths[0]} layers); with DeepNorm the update stays a fraction of "
        "the output, the gradient reaches the bottom layer undiminished, and the loss falls further. (Parameters "
        "DeepNorm does not prescribe, such as the embeddings and the output projection, get berry's defaults in "
        "the DeepNorm rows, hence the different starting loss.)"), ""]

    lrs = (0.1,) if quick else (0.1, 0.03)
    rows = fixup_evidence(steps=10 if quick else 30, lrs=lrs)
    prior = rows[0]["prior"]
    out += [
        "### Fixup: residual MLP without normalization, SGD with momentum 0.9",
        "",
        f"{rows[0]['depth']} blocks of 2 linear layers (width 64), 10-class synthetic task (labels from a random",
        "linear teacher), batches of 64. Predicting the class frequencies (learning nothing) gives a loss of "
        f"{prior:.3f}.",
        "",
        _table(["blocks", "lr", "init", "loss start", "loss end"],
               [[r["depth"], r["lr"], r["init"], _f(r["loss_start"]), f"{_f(r['loss_end'])} ({r['steps']} steps)"]
                for r in rows]),
        "",
    ]
    fixed = {(r["lr"], r["init"]): r for r in rows}
    he_fails = all(not math.isfinite(fixed[lr, "he"]["loss_end"]) for lr in lrs)
    fixup_trains = all(math.isfinite(fixed[lr, "fixup"]["loss_end"])
                       and fixed[lr, "fixup"]["loss_end"] < fixed[lr, "fixup"]["loss_start"] for lr in lrs)
    default_fails = not math.isfinite(fixed[0.1, "default"]["loss_end"])
    out += [_claim(he_fails and fixup_trains and default_fails,
                   "He initialization without normalization blows up (NaN); torch's default diverges at lr 0.1; "
                   f"Fixup trains at {' and '.join(str(lr) for lr in lrs)}."), ""]

    rows = lsuv_evidence(small=quick)
    out += [
        "### LSUV (tol 0.1 on the variance): every layer's output std, measured after initialization",
        "",
        _table(["model", "layers", "torch default: std min..max", "LSUV: std min..max", "all within tol", "rescalings"],
               [[r["model"], r["layers"], f"{_f(r['default_min'])}..{_f(r['default_max'])}",
                 f"{r['lsuv_min']:.4f}..{r['lsuv_max']:.4f}", "yes" if r["within_tol"] else "NO", r["iterations"]]
                for r in rows]),
        "",
    ]

    rows = gpt2_evidence(depths=(2, 8, 32) if quick else (2, 8, 32, 96))
    out += [
        "### GPT-2: std of the residual stream after the last block",
        "",
        _table(["layers", "GPT-2 (0.02/sqrt(2N))", "unscaled (0.02)"],
               [[r["depth"], _f(r["gpt2"]), _f(r["unscaled"])] for r in rows]),
        "",
    ]

    rows = mup_evidence()
    out += [
        "### muP: berry's numbers for an MLP 8 → width → width → 10 over a base width of 32",
        "",
        _table(["width", "r", "hidden std", "readout std (scaled)", "Adam lr mult (hidden)", "Adam lr mult (input)"],
               [[r["width"], _f(r["r"]), _f(r["hidden_std"], 4), _f(r["readout_std"], 4), _f(r["adam_hidden"], 4),
                 _f(r["adam_input"], 4)] for r in rows]),
        "",
        f"(torch {torch.__version__}, one thread{', --quick sizes' if quick else ''})",
    ]
    return "\n".join(out)


def replace_block(document: str, block: str) -> str:
    """``document`` with the text between the BEGIN and END markers replaced by ``block``."""
    if document.count(BEGIN) != 1 or document.count(END) != 1:
        raise ValueError(f"the document must hold the markers {BEGIN!r} and {END!r} once each")
    head, rest = document.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller experiments (the slow tests' sizes)")
    parser.add_argument("--write", metavar="DOC", help="replace the generated section of DOC (docs/schemes.md)")
    parser.add_argument("--check", metavar="DOC", help="exit 1 if the generated section of DOC differs")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    block = render(quick=args.quick)
    status = 0
    if args.write or args.check:
        path = pathlib.Path(args.write or args.check)
        document = path.read_text(encoding="utf-8")
        updated = replace_block(document, block)
        if args.write:
            path.write_text(updated, encoding="utf-8")
        elif updated != document:
            print(f"{path}: the generated section is stale; rerun with --write {path}", file=sys.stderr)
            status = 1
    else:
        print(block)
    print(f"(took {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())

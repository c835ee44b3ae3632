"""Small CPU experiments showing that berry's whole-network schemes do what their papers promise.

Run from the repository root::

    python examples/schemes_evidence.py                          # print the Markdown section
    python examples/schemes_evidence.py --write docs/schemes.md  # regenerate it in the docs
    python examples/schemes_evidence.py --check docs/schemes.md  # exit 1 if the docs are stale
    python examples/schemes_evidence.py --quick                  # smaller versions (the slow tests' sizes)
    python examples/schemes_evidence.py --part recipes           # only the training recipes' section

It writes two generated sections of docs/schemes.md, each between its own
BEGIN/END markers, with the sentences that cite their numbers (each checked
against the numbers before it is written). The classic schemes
(``--part classic``):

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

and the training recipes (``--part recipes``):

6. CompleteP (Dey et al. 2025): the best AdamW learning rate of a pre-LN
   residual MLP stays put as depth grows; with the standard parametrization it moves.
7. Spectral condition (Yang, Simon & Bernstein 2023): the relative change of
   the hidden features after a few Adam steps does not depend on the width.
8. Mimetic attention (Trockman & Kolter 2023): attention starts near the
   diagonal and a small GPT learns a task that needs attention faster.
9. Mamba: the dt bias survives a later whole-model init (``_no_reinit``).
10. LoRA: the adapted model equals the base model at step 0, for every init.
11. LoRA under tensor parallelism, with real processes: the std of ``A`` (and
    its values) do not depend on the number of processes.

Every number comes from fixed seeds on one thread, so the output is the same
on every run with the same torch on the same kind of CPU (both are printed with
the recipes' section). Another CPU family can move a few last digits: its BLAS
sums float32 products in another order, which the runs that diverge at large
learning rates amplify, and LoRA's rounding-level differences show it directly.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any, cast

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
def _classification_data(
    n: int = 256, d: int = 16, classes: int = 10, seed: int = 0, hidden: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels from a random teacher: linear, or with a ReLU layer of ``hidden`` units."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator)
    if hidden:
        first = torch.randn(d, hidden, generator=generator) / math.sqrt(d)
        return x, (torch.relu(x @ first) @ torch.randn(hidden, classes, generator=generator)).argmax(dim=1)
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


# ----------------------------------------------------------------------------- CompleteP
class PreLNResidualMLP(torch.nn.Module):
    """``h + m * fc2(gelu(fc1(norm(h))))`` blocks between a linear stem and a normed head; ``m`` the branch multiplier."""

    def __init__(self, in_features: int, width: int, depth: int, out_features: int) -> None:
        super().__init__()
        self.stem = torch.nn.Linear(in_features, width)
        self.blocks = torch.nn.ModuleList(torch.nn.ModuleDict({
            "norm": torch.nn.LayerNorm(width), "fc1": torch.nn.Linear(width, width), "fc2": torch.nn.Linear(width, width),
        }) for _ in range(depth))
        self.norm = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, out_features)
        self.branch_multiplier = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = h + self.branch_multiplier * block["fc2"](F.gelu(block["fc1"](block["norm"](h))))
        return self.head(self.norm(h))


def completep_evidence(
    depths: Sequence[int] = (2, 8, 32),
    *,
    log2_lrs: Sequence[int] = tuple(range(-9, -2)),
    width: int = 64,
    steps: int = 60,
    batch: int = 256,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Learning-rate sweeps at several depths: standard parametrization (alpha = 0) vs CompleteP (alpha = 1).

    Both start from the same N(0, 0.02^2) weights and train with AdamW on a 10-class synthetic task (labels
    from a random ReLU teacher); CompleteP adds the branch multiplier L_base / L and its AdamW epsilon rule.
    The loss is the mean training loss of the last 10 steps.
    """
    x, y = _classification_data(n=2048, d=16, classes=10, seed=seed, hidden=128)
    rows = []
    for parametrization, alpha in (("standard", 0.0), ("CompleteP", 1.0)):
        for depth in depths:
            losses = {}
            for log2_lr in log2_lrs:
                model = PreLNResidualMLP(16, width, depth, 10)
                report = schemes.completep(model, base_depth=depths[0], alpha=alpha, init_std=0.02, seed=seed)
                model.branch_multiplier = report.constants["residual_multiplier"]
                optimizer = torch.optim.AdamW(report.param_groups(model, 2.0**log2_lr))
                tail = []
                for step in range(steps):
                    rows_of_batch = torch.arange(step * batch, (step + 1) * batch) % len(x)
                    loss = F.cross_entropy(model(x[rows_of_batch]), y[rows_of_batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    if step >= steps - 10:
                        tail.append(float(loss.detach()))
                losses[log2_lr] = sum(tail) / len(tail)
            best = min(losses, key=lambda k: (losses[k], k))
            rows.append({"parametrization": parametrization, "depth": depth, "losses": losses, "best_log2_lr": best,
                         "best_loss": losses[best], "multiplier": model.branch_multiplier})
    return rows


# ----------------------------------------------------------------------------- spectral condition
def _spectral_mlp(width: int) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = [torch.nn.Linear(32, width), torch.nn.ReLU()]
    for _ in range(2):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))


def spectral_evidence(
    widths: Sequence[int] = (64, 256, 1024, 2048), *, lr: float = 1e-2, steps: int = 3, seed: int = 0
) -> list[dict[str, Any]]:
    """Relative change of the last hidden features after a few Adam steps, across widths.

    "standard": He init and one learning rate for every layer; "spectral": berry's spectral scheme (scaled
    semi-orthogonal weights) with its Adam learning rates relative to the width-64 model.
    """
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randn(256, 32, generator=generator), torch.randint(0, 10, (256,), generator=generator)
    with torch.device("meta"):
        base = _spectral_mlp(widths[0])
    rows = []
    for width in widths:
        row: dict[str, Any] = {"width": width}
        for parametrization in ("standard", "spectral"):
            model = _spectral_mlp(width)
            if parametrization == "spectral":
                report = schemes.spectral(model, base=base, seed=seed)
                optimizer = torch.optim.Adam(report.param_groups(model, lr))
            else:
                init_model(model, {"Linear:weight": "he", "Linear:bias": "zeros"}, seed=seed)
                optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            with torch.no_grad():
                before = model[:-1](x)
            for _ in range(steps):
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                row[parametrization] = float((model[:-1](x) - before).norm() / before.norm())
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- mimetic attention
def _repeats(batch: int, length: int, vocab: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences and, per position, whether that token already occurred earlier in the sequence."""
    tokens = torch.randint(0, vocab, (batch, length), generator=generator)
    earlier = torch.ones(length, length, dtype=torch.bool).tril(-1)
    return tokens, ((tokens[:, :, None] == tokens[:, None, :]) & earlier).any(-1).long()


def _self_attention_weight(model: Transformer, tokens: torch.Tensor) -> float:
    """Mean attention a token pays to itself in the first layer (causal; positions 1.. so there is a choice)."""
    block = model.blocks[0]
    attention = cast(Any, block.attn)
    q, k, _ = attention.c_attn(block.ln_1(model.embed(tokens))).split(model.n_embd, dim=2)
    heads, length = attention.n_head, tokens.shape[1]
    q, k = (t.view(*t.shape[:2], heads, -1).transpose(1, 2) for t in (q, k))
    scores = (q @ k.transpose(-1, -2)) * attention.scale
    scores = scores.masked_fill(~torch.ones(length, length, dtype=torch.bool).tril(), float("-inf"))
    return float(scores.softmax(-1).diagonal(dim1=-2, dim2=-1)[..., 1:].mean())


def mimetic_evidence(
    *, seeds: Sequence[int] = (0, 1), steps: int = 200, width: int = 64, length: int = 24, vocab: int = 32,
    batch: int = 64, lr: float = 1e-3,
) -> list[dict[str, Any]]:
    """A 2-layer GPT learns to flag repeated tokens: default initialization vs mimetic attention, same seeds.

    Every parameter gets berry's structural defaults (rules ``{}``); "mimetic" then re-initializes the
    attention weights only.
    Reports the first layer's mean self-attention at initialization and the mean training loss at a few
    points (10-step windows), averaged over the seeds.
    """
    checkpoints = (0, steps // 6, steps // 3, steps * 2 // 3, steps - 10)
    rows = []
    for init in ("default", "mimetic"):
        self_attention, curves = [], []
        for seed in seeds:
            model = Transformer(n_layer=2, n_embd=width, n_head=4, vocab_size=vocab, block_size=length)
            init_model(model, {}, seed=seed)
            if init == "mimetic":
                schemes.mimetic(model, seed=seed)
            generator = torch.Generator().manual_seed(1000 + seed)
            with torch.no_grad():
                self_attention.append(_self_attention_weight(model, _repeats(batch, length, vocab, generator)[0]))
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            losses = []
            for _ in range(steps):
                tokens, labels = _repeats(batch, length, vocab, generator)
                loss = F.cross_entropy(model(tokens)[..., :2].reshape(-1, 2), labels.reshape(-1))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            curves.append([sum(losses[c:c + 10]) / 10 for c in checkpoints])
        rows.append({"init": init, "self_attention": sum(self_attention) / len(self_attention),
                     "uniform": float((1 / torch.arange(2, length + 1.0)).mean()), "checkpoints": checkpoints,
                     "losses": [sum(c[i] for c in curves) / len(curves) for i in range(len(checkpoints))]})
    return rows


# ----------------------------------------------------------------------------- Mamba
class _MambaMixer(torch.nn.Module):
    """mamba_ssm's Mamba parameter names and shapes (d_model 32, d_state 16), without the scan kernels."""

    def __init__(self, d_model: int = 32, d_state: int = 16) -> None:
        super().__init__()
        d_inner, dt_rank = 2 * d_model, math.ceil(d_model / 16)
        self.in_proj = torch.nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = torch.nn.Conv1d(d_inner, d_inner, 4, groups=d_inner, padding=3)
        self.x_proj = torch.nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = torch.nn.Linear(dt_rank, d_inner)
        self.A_log = torch.nn.Parameter(torch.empty(d_inner, d_state))
        self.D = torch.nn.Parameter(torch.empty(d_inner))
        self.out_proj = torch.nn.Linear(d_inner, d_model, bias=False)


def mamba_evidence(*, n_layers: int = 4, dt_min: float = 0.001, dt_max: float = 0.1, seed: int = 0) -> list[dict[str, Any]]:
    """softplus(dt bias) after schemes.mamba and then a whole-model init_model, with and without _no_reinit."""
    rows = []
    for respect in (True, False):
        model = torch.nn.Module()
        model.layers = torch.nn.ModuleList(torch.nn.ModuleDict({"mixer": _MambaMixer()}) for _ in range(n_layers))
        schemes.mamba(model, seed=seed, dt_min=dt_min, dt_max=dt_max)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # without _no_reinit, D falls to the 1-D fallback (it warns)
            init_model(model, {}, seed=seed + 1, respect_no_reinit=respect)
        dt = torch.cat([F.softplus(layer["mixer"].dt_proj.bias.detach().double()) for layer in model.layers])
        rows.append({"no_reinit": respect, "dt_min": float(dt.min()), "dt_max": float(dt.max()),
                     "inside": bool(((dt >= dt_min * (1 - 1e-6)) & (dt <= dt_max * (1 + 1e-6))).all()),
                     "channels": dt.numel()})
    return rows


# ----------------------------------------------------------------------------- LoRA
class _AdaptedLinear(torch.nn.Module):
    """A frozen ``base`` linear layer with a LoRA pair ``lora_A`` (r, in) and ``lora_B`` (out, r), scaling 2."""

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        self.base = torch.nn.Linear(in_features, out_features, bias=False)
        self.lora_A = torch.nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = torch.nn.Parameter(torch.empty(out_features, rank))
        self.scaling = 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * (x @ self.lora_A.T) @ self.lora_B.T


def _adapted_mlp(width: int, rank: int) -> torch.nn.Sequential:
    torch.manual_seed(0)  # the "pretrained" base weights
    return torch.nn.Sequential(_AdaptedLinear(32, width, rank), torch.nn.GELU(), _AdaptedLinear(width, 16, rank))


def lora_step0_evidence(*, width: int = 256, rank: int = 8, seed: int = 0) -> list[dict[str, Any]]:
    """Max |output - base output| right after each LoRA initialization (the adapters must not move the model)."""
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(seed))
    rows = []
    for init in ("kaiming", "gaussian", "orthogonal", "pissa", "olora"):
        model = _adapted_mlp(width, rank)
        with torch.no_grad():
            base = torch.nn.Sequential(model[0].base, model[1], model[2].base)(x)
        schemes.lora(model, init=init, seed=seed)
        with torch.no_grad():
            rows.append({"init": init, "max_diff": float((model(x) - base).abs().max()), "scale": float(base.abs().max())})
    return rows


def _lora_tp_worker(rank: int, world: int, port: int, in_features: int, lora_rank: int, path: str) -> None:
    import os

    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        mesh = init_device_mesh("cpu", (world,))
        out: dict[str, torch.Tensor] = {}
        for how in ("berry", "torch per shard"):
            layer = _AdaptedLinear(in_features, 64, lora_rank)
            # row-parallel: the base and A are split along the input dimension, as under tensor parallelism
            for name in ("lora_A", "base.weight"):
                owner_name, _, local = name.rpartition(".")
                owner = layer.get_submodule(owner_name) if owner_name else layer
                sharded = distribute_tensor(getattr(owner, local).detach(), mesh, [Shard(1)])
                owner.register_parameter(local, torch.nn.Parameter(sharded))
            if how == "berry":
                schemes.lora(layer, seed=0)
            else:  # what code calling torch.nn.init on each rank's own tensor does: the local fan-in
                torch.manual_seed(rank)
                torch.nn.init.kaiming_uniform_(cast(Any, layer.lora_A).to_local(), a=math.sqrt(5))
            out[how] = cast(Any, layer.lora_A).full_tensor()
        if rank == 0:
            torch.save(out, path)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # Leave without the interpreter's teardown, which can abort a gloo worker after its results are saved
    # ("terminate called without an active exception"); an exception above still reaches spawn.
    os._exit(0)


def lora_tp_evidence(*, worlds: Sequence[int] = (2,), in_features: int = 1024, rank: int = 16) -> list[dict[str, Any]]:
    """std of LoRA's A under tensor parallelism (real processes, gloo, DTensor Shard(1)) vs one process."""
    import socket
    import tempfile

    here = str(pathlib.Path(__file__).resolve().parent)
    if here not in sys.path:  # spawned workers import this file by its module name
        sys.path.insert(0, here)
    if getattr(sys.modules.get(__name__), "_lora_tp_worker", None) is not _lora_tp_worker:
        raise RuntimeError(f"run this file as a script or import it as module {__name__!r} (in sys.modules): "
                           "the worker processes find their function by that name")
    single = _AdaptedLinear(in_features, 64, rank)
    schemes.lora(single, seed=0)
    reference = single.lora_A.detach()
    rows = [{"processes": 1, "how": "berry", "std": float(reference.std()), "same_values": True}]
    for world in worlds:
        with socket.socket() as probe, tempfile.TemporaryDirectory() as tmp:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            probe.close()
            path = f"{tmp}/a.pt"
            torch.multiprocessing.spawn(_lora_tp_worker, args=(world, port, in_features, rank, path), nprocs=world)
            gathered = torch.load(path)
        for how, values in gathered.items():
            values = values.detach()
            rows.append({"processes": world, "how": how, "std": float(values.std()),
                         "same_values": bool(torch.equal(values, reference))})
    for row in rows:
        row["expected_std"] = 1 / math.sqrt(3 * in_features)
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


def render_classic(quick: bool = False) -> str:
    """The classic schemes' evidence section of docs/schemes.md: every number and every sentence citing one."""
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


def render_recipes(quick: bool = False) -> str:
    """The training recipes' evidence section of docs/schemes.md."""
    out: list[str] = []
    width = 32 if quick else 64
    rows = completep_evidence(depths=(2, 16) if quick else (2, 8, 32),
                              log2_lrs=range(-8, -3) if quick else range(-9, -2), width=width, steps=40 if quick else 60)
    lrs = list(rows[0]["losses"])
    steps = 40 if quick else 60
    out += [
        f"### CompleteP: AdamW learning-rate sweeps at several depths (width {width}, base depth 2)",
        "",
        f"A pre-LN residual MLP (`h + m · fc2(gelu(fc1(norm(h))))`, width {width}) on a 10-class synthetic task",
        f"(labels from a random ReLU teacher), {steps} AdamW steps of batch 256; the loss is the mean of the last 10",
        "steps. Both parametrizations start from the same N(0, 0.02²) weights; \"standard\" is α = 0 (no branch",  # noqa: RUF001
        "multiplier), CompleteP α = 1 (multiplier L_base/L and its ε rule).",  # noqa: RUF001
        "",
        _table(["parametrization", "blocks", "branch multiplier", *[f"lr 2^{k}" for k in lrs], "best lr"],
               [[r["parametrization"], r["depth"], _f(r["multiplier"]), *[_f(r["losses"][k]) for k in lrs],
                 f"2^{r['best_log2_lr']}"] for r in rows]),
        "",
    ]
    best = {(r["parametrization"], r["depth"]): r["best_log2_lr"] for r in rows}
    completep_stays = len({v for (p, _), v in best.items() if p == "CompleteP"}) == 1
    standard_moves = len({v for (p, _), v in best.items() if p == "standard"}) > 1
    out += [_claim(completep_stays and standard_moves,
                   "With CompleteP the best learning rate is the same at every depth; with the standard "
                   "parametrization it moves as the model gets deeper."), ""]

    rows = spectral_evidence(widths=(64, 256, 1024) if quick else (64, 256, 1024, 2048))
    out += [
        "### Spectral condition: relative change of the last hidden features after 3 Adam steps (lr 1e-2)",
        "",
        "A 3-hidden-layer ReLU MLP at several widths; ‖h₁ − h₀‖/‖h₀‖ of the last hidden layer's features on a",  # noqa: RUF001
        "fixed batch. \"standard\": He init and one learning rate for all layers; \"spectral\": `schemes.spectral`",
        f"with its Adam learning rates relative to the width-{rows[0]['width']} model.",
        "",
        _table(["width", "standard (He init, one lr)", "spectral (berry)"],
               [[r["width"], _f(r["standard"]), _f(r["spectral"])] for r in rows]),
        "",
    ]
    spectral = [r["spectral"] for r in rows]
    standard = [r["standard"] for r in rows]
    out += [_claim(max(spectral) < 1.5 * min(spectral) and standard[-1] > 2 * standard[0],
                   "Under the spectral condition the features move by the same relative amount at every width; "
                   "with He initialization and one learning rate the change grows with the width."), ""]

    rows = mimetic_evidence(seeds=(0,) if quick else (0, 1), steps=120 if quick else 200)
    checkpoints = rows[0]["checkpoints"]
    seeds = 1 if quick else 2
    out += [
        "### Mimetic attention: a 2-layer GPT learning to flag repeated tokens (Adam, lr 1e-3)",
        "",
        "Width 64, 4 heads, sequences of 24 tokens from 32; each position predicts whether its token already",
        "occurred earlier (a task that needs attention between equal tokens). Both models get berry's default",
        "initialization; \"mimetic\" then re-initializes the attention weights only. Self-attention is the first",
        "layer's mean attention weight of a token on itself at initialization (\"uniform\": what uniform causal",
        f"attention gives); losses are means over 10-step windows, averaged over {seeds} seed{'s' if seeds > 1 else ''}.",
        "",
        _table(["init", "self-attention at init", "uniform", *[f"loss @ step {c}" for c in checkpoints]],
               [[r["init"], _f(r["self_attention"]), _f(r["uniform"]), *[_f(v) for v in r["losses"]]] for r in rows]),
        "",
    ]
    by_init = {r["init"]: r for r in rows}
    out += [_claim(by_init["mimetic"]["self_attention"] > 2 * by_init["default"]["self_attention"]
                   and by_init["mimetic"]["losses"][-1] < by_init["default"]["losses"][-1],
                   "Mimetic initialization starts with attention concentrated on each token itself (default: "
                   "near uniform) and reaches a lower loss within the same steps."), ""]

    rows = mamba_evidence()
    out += [
        "### Mamba: softplus(dt bias) after schemes.mamba, then a whole-model init_model",
        "",
        f"Four mamba_ssm-named mixers ({rows[0]['channels']} channels); `schemes.mamba`, then "
        "`init_model(model, {})`",
        "on the whole model.",
        "",
        _table(["init_model respects _no_reinit", "channels", "dt min", "dt max", "inside [0.001, 0.1]"],
               [["yes" if r["no_reinit"] else "no", r["channels"], _f(r["dt_min"]), _f(r["dt_max"]),
                 "yes" if r["inside"] else "NO"] for r in rows]),
        "",
    ]

    rows = lora_step0_evidence()
    out += [
        "### LoRA: the adapted model at step 0, max |output − base output|",  # noqa: RUF001
        "",
        "A 2-layer MLP with a rank-8 adapter (scaling 2) on each layer.",
        "",
        _table(["init", "max difference", "output scale"],
               [[r["init"], f"{r['max_diff']:.2g}", _f(r["scale"])] for r in rows]),
        "",
    ]

    in_features = 256 if quick else 1024
    rows = lora_tp_evidence(in_features=in_features)
    out += [
        f"### LoRA under tensor parallelism: std of A ({in_features} inputs, rank 16), A and the base sharded "
        "on the input dim",
        "",
        "Two real processes (gloo), A and the base weight DTensors placed `Shard(1)` (row-parallel); \"torch per",
        "shard\" is `torch.nn.init.kaiming_uniform_` on each process's local shard.",
        "",
        _table(["processes", "initialized by", "std of A", "expected 1/sqrt(3 fan_in)", "same values as 1 process"],
               [[r["processes"], r["how"], f"{r['std']:.5f}", f"{r['expected_std']:.5f}",
                 "yes" if r["same_values"] else "no"] for r in rows]),
        "",
    ]
    berry_rows = [r for r in rows if r["how"] == "berry"]
    per_shard = [r for r in rows if r["how"] != "berry"]
    out += [
        _claim(all(r["same_values"] for r in berry_rows) and all(r["std"] > 1.3 * r["expected_std"] for r in per_shard),
               "Per-shard initialization with the local fan-in gives √(number of shards) times the std; berry's A "
               "is the one-process tensor, bit for bit."),
        "",
        f"(torch {torch.__version__}, one thread, {_cpu()}{', --quick sizes' if quick else ''})",
    ]
    return "\n".join(out)


def _cpu() -> str:
    """The CPU's model name (Linux), which the recipes' float32 numbers depend on in their last digits."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "an unknown CPU"


#: Each generated section of docs/schemes.md: its markers and the function that writes it.
PARTS = {"classic": render_classic, "recipes": render_recipes}


def markers(part: str) -> tuple[str, str]:
    """The BEGIN and END lines around ``part``'s generated section."""
    return (f"<!-- BEGIN generated by examples/schemes_evidence.py --part {part}: do not edit by hand -->",
            f"<!-- END generated by examples/schemes_evidence.py --part {part} -->")


def replace_block(document: str, block: str, part: str) -> str:
    """``document`` with the text between ``part``'s BEGIN and END markers replaced by ``block``."""
    begin, end = markers(part)
    if document.count(begin) != 1 or document.count(end) != 1:
        raise ValueError(f"the document must hold the markers {begin!r} and {end!r} once each")
    head, rest = document.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{block}\n{end}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller experiments (the slow tests' sizes)")
    parser.add_argument("--part", choices=("all", *PARTS), default="all",
                        help="the classic schemes (DeepNorm ... muP), the training recipes (CompleteP ... LoRA), or both")
    parser.add_argument("--write", metavar="DOC", help="replace the generated sections of DOC (docs/schemes.md)")
    parser.add_argument("--check", metavar="DOC", help="exit 1 if a generated section of DOC differs")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    parts = list(PARTS) if args.part == "all" else [args.part]
    blocks = {part: PARTS[part](quick=args.quick) for part in parts}
    status = 0
    if args.write or args.check:
        path = pathlib.Path(args.write or args.check)
        document = path.read_text(encoding="utf-8")
        updated = document
        for part, block in blocks.items():
            updated = replace_block(updated, block, part)
        if args.write:
            path.write_text(updated, encoding="utf-8")
        elif updated != document:
            print(f"{path}: a generated section is stale; rerun with --write {path}", file=sys.stderr)
            status = 1
    else:
        print("\n\n".join(blocks.values()))
    print(f"(took {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())

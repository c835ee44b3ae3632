"""Small reference models for berry's whole-network schemes (:mod:`berry.torch.schemes`).

They are small on purpose (tests and examples run them on a CPU in seconds) and
they name their parameters the way the models the schemes were written for do,
so the schemes' presets find them:

* :class:`Transformer`: a decoder (GPT, causal) or encoder (BERT-like) stack,
  pre-LN, post-LN or without normalization (for T-Fixup), with a DeepNorm
  residual hook ``x * alpha + f(x)``. ``naming="gpt2"`` uses nanoGPT's names
  (``transformer.h.0.attn.c_attn``, ``attn.c_proj``, ``mlp.c_fc``,
  ``mlp.c_proj``, ``lm_head``); ``naming="fairseq"`` uses fairseq's and
  torchscale's (``layers.0.self_attn.q_proj`` ... ``out_proj``, ``fc1``, ``fc2``,
  ``output_projection``).
* :class:`ResidualMLP`: ``x + f(x)`` blocks of ``m`` linear layers without
  normalization; ``fixup=True`` adds Fixup's scalar biases and multiplier.
* :class:`ResNet`: a small CIFAR-style ResNet with torchvision's names
  (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ``fc``);
  ``norm="none"`` gives the Fixup variant (scalar biases and multipliers, no
  BatchNorm).

Importing this module imports torch.

>>> import torch
>>> from berry.torch.models import Transformer
>>> model = Transformer(n_layer=2, n_embd=32, n_head=4, vocab_size=50, block_size=8)
>>> model(torch.zeros(3, 8, dtype=torch.long)).shape
torch.Size([3, 8, 50])
>>> sorted(n for n, _ in model.named_parameters() if n.startswith("transformer.h.0.attn"))
['transformer.h.0.attn.c_attn.bias', 'transformer.h.0.attn.c_attn.weight', 'transformer.h.0.attn.c_proj.bias', 'transformer.h.0.attn.c_proj.weight']
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from berry._validation import check_choice, check_int, check_positive

__all__ = ["ResNet", "ResidualMLP", "Transformer"]

NORMS = ("pre", "post", "none")
NAMINGS = ("gpt2", "fairseq")
ATTENTION_SCALES = ("sqrt", "mup")


def _scalar(value: float) -> nn.Parameter:
    """A learnable scalar (Fixup's biases start at 0, its multipliers at 1)."""
    return nn.Parameter(torch.full((), float(value)))


# ----------------------------------------------------------------------------- transformer
class _Attention(nn.Module):
    def __init__(
        self, d: int, n_head: int, *, packed: bool, bias: bool, causal: bool, attention_scale: str
    ) -> None:
        super().__init__()
        self.d, self.n_head, self.packed, self.causal = d, n_head, packed, causal
        head = d // n_head
        # muP scores q.k / d_head (a forward change, Yang et al. 2021); standard is q.k / sqrt(d_head).
        self.scale = 1.0 / head if attention_scale == "mup" else 1.0 / math.sqrt(head)
        if packed:
            self.c_attn = nn.Linear(d, 3 * d, bias=bias)
            self.c_proj = nn.Linear(d, d, bias=bias)
        else:
            self.q_proj = nn.Linear(d, d, bias=bias)
            self.k_proj = nn.Linear(d, d, bias=bias)
            self.v_proj = nn.Linear(d, d, bias=bias)
            self.out_proj = nn.Linear(d, d, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d = x.shape
        if self.packed:
            q, k, v = self.c_attn(x).split(d, dim=2)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q, k, v = (t.view(batch, length, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=self.scale)
        y = y.transpose(1, 2).reshape(batch, length, d)
        return self.c_proj(y) if self.packed else self.out_proj(y)


class _Block(nn.Module):
    """One transformer layer: attention and feed-forward sublayers, each ``norm(alpha * x + f(x))``."""

    def __init__(
        self,
        d: int,
        n_head: int,
        *,
        naming: str,
        norm: str,
        bias: bool,
        causal: bool,
        attention_scale: str,
        ffn_mult: int,
    ) -> None:
        super().__init__()
        self.naming, self.norm = naming, norm
        self.alpha = 1.0  # DeepNorm's residual multiplier (set_residual_scale)
        gpt2 = naming == "gpt2"
        attention = _Attention(d, n_head, packed=gpt2, bias=bias, causal=causal, attention_scale=attention_scale)
        up, down = nn.Linear(d, ffn_mult * d, bias=bias), nn.Linear(ffn_mult * d, d, bias=bias)
        norms = [nn.LayerNorm(d) if norm != "none" else nn.Identity() for _ in range(2)]
        if gpt2:
            self.ln_1, self.attn, self.ln_2 = norms[0], attention, norms[1]
            self.mlp = nn.Module()
            self.mlp.c_fc, self.mlp.c_proj = up, down
        else:
            self.self_attn_layer_norm, self.self_attn, self.final_layer_norm = norms[0], attention, norms[1]
            self.fc1, self.fc2 = up, down

    def _parts(self) -> tuple[Any, ...]:
        if self.naming == "gpt2":
            return self.ln_1, self.attn, self.ln_2, self.mlp.c_fc, self.mlp.c_proj
        return self.self_attn_layer_norm, self.self_attn, self.final_layer_norm, self.fc1, self.fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm1, attention, norm2, up, down = self._parts()

        def feed_forward(h: torch.Tensor) -> torch.Tensor:
            return down(F.gelu(up(h)))

        for norm, sublayer in ((norm1, attention), (norm2, feed_forward)):
            if self.norm == "pre":
                x = x * self.alpha + sublayer(norm(x))
            else:  # post-LN: norm(alpha * x + f(x)); without normalization the norm is the identity
                x = norm(x * self.alpha + sublayer(x))
        return x


class Transformer(nn.Module):
    """A small GPT-style (causal) or encoder (bidirectional) transformer language model.

    Parameters
    ----------
    vocab_size, block_size:
        Vocabulary size and the longest sequence (learned positions).
    n_layer, n_embd, n_head:
        Depth, width and attention heads (``n_embd`` divisible by ``n_head``).
    norm:
        ``"pre"`` (GPT-2), ``"post"`` (the original transformer, DeepNet) or
        ``"none"`` (no layer norm, for T-Fixup).
    naming:
        ``"gpt2"`` (nanoGPT's parameter names) or ``"fairseq"`` (fairseq's and
        torchscale's: separate ``q_proj``/``k_proj``/``v_proj``/``out_proj``,
        ``fc1``/``fc2``).
    causal:
        ``True`` for a decoder (GPT), ``False`` for an encoder (BERT).
    attention_scale:
        ``"sqrt"`` scores ``q.k / sqrt(d_head)``; ``"mup"`` scores
        ``q.k / d_head`` as muP requires.
    bias:
        Whether linear layers have biases.
    ffn_mult:
        Feed-forward width as a multiple of ``n_embd``.
    alpha:
        DeepNorm's residual multiplier, ``x * alpha + f(x)`` (1 is the plain residual).

    Examples
    --------
    >>> model = Transformer(n_layer=2, n_embd=32, n_head=4, naming="fairseq", norm="post")
    >>> [n for n, _ in model.named_parameters() if n.startswith("layers.0.self_attn.")][:2]
    ['layers.0.self_attn.q_proj.weight', 'layers.0.self_attn.q_proj.bias']
    """

    def __init__(
        self,
        *,
        vocab_size: int = 64,
        block_size: int = 16,
        n_layer: int = 2,
        n_embd: int = 64,
        n_head: int = 4,
        norm: str = "pre",
        naming: str = "gpt2",
        causal: bool = True,
        attention_scale: str = "sqrt",
        bias: bool = True,
        ffn_mult: int = 4,
        alpha: float = 1.0,
    ) -> None:
        super().__init__()
        vocab_size = check_int("vocab_size", vocab_size, minimum=1)
        block_size = check_int("block_size", block_size, minimum=1)
        n_layer = check_int("n_layer", n_layer, minimum=1)
        n_embd = check_int("n_embd", n_embd, minimum=1)
        n_head = check_int("n_head", n_head, minimum=1)
        ffn_mult = check_int("ffn_mult", ffn_mult, minimum=1)
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.norm = check_choice("norm", norm, NORMS)
        self.naming = check_choice("naming", naming, NAMINGS)
        attention_scale = check_choice("attention_scale", attention_scale, ATTENTION_SCALES)
        self.n_layer, self.n_embd, self.block_size = n_layer, n_embd, block_size
        blocks = [
            _Block(
                n_embd, n_head, naming=self.naming, norm=self.norm, bias=bias, causal=causal,
                attention_scale=attention_scale, ffn_mult=ffn_mult,
            )
            for _ in range(n_layer)
        ]
        # A pre-LN stack ends with a norm (GPT-2's ln_f); post-LN already ends normalized.
        final_norm = nn.LayerNorm(n_embd) if self.norm == "pre" else nn.Identity()
        if self.naming == "gpt2":
            self.transformer = nn.ModuleDict(
                {
                    "wte": nn.Embedding(vocab_size, n_embd),
                    "wpe": nn.Embedding(block_size, n_embd),
                    "h": nn.ModuleList(blocks),
                    "ln_f": final_norm,
                }
            )
            self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        else:
            self.embed_tokens = nn.Embedding(vocab_size, n_embd)
            self.embed_positions = nn.Embedding(block_size, n_embd)
            self.layers = nn.ModuleList(blocks)
            self.layer_norm = final_norm
            self.output_projection = nn.Linear(n_embd, vocab_size, bias=False)
        self.set_residual_scale(alpha)

    @property
    def blocks(self) -> list[_Block]:
        """The transformer layers, in order."""
        stack = self.transformer["h"] if self.naming == "gpt2" else self.layers
        return list(cast(nn.ModuleList, stack))  # type: ignore[arg-type]

    def set_residual_scale(self, alpha: float) -> None:
        """Set DeepNorm's residual multiplier: every sublayer computes ``norm(x * alpha + f(x))``."""
        alpha = check_positive("alpha", alpha)
        for block in self.blocks:
            block.alpha = alpha

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Token plus position embeddings of ``idx`` (batch, length)."""
        positions = torch.arange(idx.shape[1], device=idx.device)
        if self.naming == "gpt2":
            return self.transformer["wte"](idx) + self.transformer["wpe"](positions)
        return self.embed_tokens(idx) + self.embed_positions(positions)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.shape[1] > self.block_size:
            raise ValueError(f"sequence length {idx.shape[1]} exceeds block_size={self.block_size}")
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        if self.naming == "gpt2":
            return self.lm_head(self.transformer["ln_f"](x))
        return self.output_projection(self.layer_norm(x))


# ----------------------------------------------------------------------------- residual MLP
class _ResidualBranch(nn.Module):
    """``x + scale * f(x)`` with ``f`` = ``m`` linear layers and ReLUs (Fixup: scalar biases before each)."""

    def __init__(self, width: int, m: int, *, fixup: bool) -> None:
        super().__init__()
        self.fixup = fixup
        self.layers = nn.ModuleList(nn.Linear(width, width, bias=not fixup) for _ in range(m))
        if fixup:  # bias{i} before layer i, bias{m} after the multiplier, as in the Fixup paper
            for i in range(m + 1):
                self.register_parameter(f"bias{i}", _scalar(0.0))
            self.scale = _scalar(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, layer in enumerate(self.layers):
            if i:
                h = F.relu(h)
            h = layer(h + getattr(self, f"bias{i}") if self.fixup else h)
        if self.fixup:
            h = h * self.scale + getattr(self, f"bias{len(self.layers)}")
        return F.relu(x + h)


class ResidualMLP(nn.Module):
    """A residual MLP without normalization: ``stem``, ``depth`` blocks ``relu(x + f(x))``, ``head``.

    Each block's branch ``f`` has ``branch_layers`` (Fixup's ``m``) linear
    layers of ``width`` units with ReLUs between them. With ``fixup=True`` the
    branches have no biases but Fixup's scalar biases (before each layer and
    after the branch) and scalar multiplier, as Zhang et al. (2019) add them.

    Parameter names: ``stem.weight``, ``blocks.{i}.layers.{j}.weight``,
    ``blocks.{i}.bias{j}`` (Fixup's scalar biases, ``j = 0..m``),
    ``blocks.{i}.scale``, ``head.weight``.

    >>> model = ResidualMLP(in_features=8, width=16, depth=3, branch_layers=2, out_features=4)
    >>> model(torch.zeros(5, 8)).shape
    torch.Size([5, 4])
    """

    def __init__(
        self,
        *,
        in_features: int = 16,
        width: int = 64,
        depth: int = 8,
        branch_layers: int = 2,
        out_features: int = 10,
        fixup: bool = False,
    ) -> None:
        super().__init__()
        in_features = check_int("in_features", in_features, minimum=1)
        width = check_int("width", width, minimum=1)
        self.depth = check_int("depth", depth, minimum=1)
        self.branch_layers = check_int("branch_layers", branch_layers, minimum=1)
        out_features = check_int("out_features", out_features, minimum=1)
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList(_ResidualBranch(width, self.branch_layers, fixup=fixup) for _ in range(depth))
        self.head = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.head(x)


# ----------------------------------------------------------------------------- ResNet
class BasicBlock(nn.Module):
    """torchvision's two-conv residual block; with ``norm="none"``, Fixup's version (scalars, no BatchNorm)."""

    def __init__(self, in_planes: int, planes: int, stride: int, *, norm: str) -> None:
        super().__init__()
        self.batchnorm = norm == "batch"
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        if self.batchnorm:
            self.bn1, self.bn2 = nn.BatchNorm2d(planes), nn.BatchNorm2d(planes)
        else:
            # Fixup's scalars, named as in the authors' code.
            self.bias1a, self.bias1b, self.bias2a, self.bias2b = (_scalar(0.0) for _ in range(4))
            self.scale = _scalar(1.0)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            shortcut: list[nn.Module] = [nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)]
            if self.batchnorm:
                shortcut.append(nn.BatchNorm2d(planes))
            self.downsample = nn.Sequential(*shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batchnorm:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            identity = x if self.downsample is None else self.downsample(x)
        else:
            out = F.relu(self.conv1(x + self.bias1a) + self.bias1b)
            out = self.conv2(out + self.bias2a) * self.scale + self.bias2b
            identity = x if self.downsample is None else self.downsample(x + self.bias1a)
        return F.relu(out + identity)


class ResNet(nn.Module):
    """A small CIFAR-style ResNet with torchvision's parameter names.

    ``norm="batch"`` is the usual ResNet; ``norm="none"`` is the Fixup-ready
    variant of Zhang et al. (2019): no BatchNorm, scalar biases before each
    convolution and activation, a scalar multiplier per branch, a scalar bias
    before the classifier.

    Parameters
    ----------
    blocks_per_stage:
        Number of residual blocks in each stage (``(2, 2, 2)`` is ResNet-20-like
        depth at a width the CPU can afford).
    width:
        Channels of the first stage; each later stage doubles them and halves
        the resolution.
    in_channels, num_classes:
        Input channels and classes.
    norm:
        ``"batch"`` or ``"none"``.

    >>> model = ResNet(blocks_per_stage=(1, 1), width=8, norm="none")
    >>> model(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        *,
        blocks_per_stage: tuple[int, ...] = (2, 2, 2),
        width: int = 16,
        in_channels: int = 3,
        num_classes: int = 10,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.norm = check_choice("norm", norm, ("batch", "none"))
        width = check_int("width", width, minimum=1)
        if not blocks_per_stage:
            raise ValueError("blocks_per_stage must name at least one stage, got ()")
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        if self.norm == "batch":
            self.bn1 = nn.BatchNorm2d(width)
        else:
            self.bias1 = _scalar(0.0)
        planes = width
        for stage, count in enumerate(blocks_per_stage):
            count = check_int("blocks_per_stage", count, minimum=1)
            out_planes = width * 2**stage
            stage_blocks = [
                BasicBlock(planes if i == 0 else out_planes, out_planes, 2 if (stage and i == 0) else 1, norm=self.norm)
                for i in range(count)
            ]
            self.add_module(f"layer{stage + 1}", nn.Sequential(*stage_blocks))
            planes = out_planes
        self.n_stages = len(blocks_per_stage)
        if self.norm == "none":
            self.bias2 = _scalar(0.0)
        self.fc = nn.Linear(planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = F.relu(self.bn1(x) if self.norm == "batch" else x + self.bias1)
        for stage in range(self.n_stages):
            x = getattr(self, f"layer{stage + 1}")(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x if self.norm == "batch" else x + self.bias2)

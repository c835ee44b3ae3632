"""Model factories for ``berry probe --model``: each is a callable taking no argument that returns a model.

Run from the repository's root (the current directory is searched for MODULE)::

    berry probe --model examples.models:plain_cnn --input 8x3x32x32
    berry probe --model examples.models:tiny_gpt --input 4x64:long
    berry probe --model examples.models:gpt_with_a_broken_block --input 4x64:long

``plain_cnn`` is a deep convolutional stack without normalization or skips, which PyTorch's default
initialization (uniform with variance 1/(3 fan_in)) lets fade layer after layer; ``tiny_gpt`` is a
nanoGPT-style causal language model with the output head tied to the token embedding;
``gpt_with_a_broken_block`` is that model with the weights of its third block 30 times too large,
as a bad checkpoint surgery or a mistyped scale would leave them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["gpt_with_a_broken_block", "plain_cnn", "tiny_gpt"]


def plain_cnn(depth: int = 16, channels: int = 32, classes: int = 10) -> nn.Module:
    """``depth`` 3x3 convolutions with ReLU (no BatchNorm, no skips), global pooling and a linear head."""
    torch.manual_seed(0)  # the factory's own default weights, the same on every run
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]
    return nn.Sequential(*layers)


class _Block(nn.Module):
    """A pre-LN transformer block: causal self-attention and a GELU MLP, each added to the stream."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln_1, self.ln_2, self.heads = nn.LayerNorm(d), nn.LayerNorm(d), heads
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class TinyGPT(nn.Module):
    """Token and position embeddings, pre-LN blocks, a final LayerNorm, a head tied to the token embedding."""

    def __init__(self, vocab: int = 512, context: int = 64, layers: int = 4, d: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.blocks = nn.ModuleList(_Block(d, heads) for _ in range(layers))
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying (Press & Wolf 2017)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def tiny_gpt() -> nn.Module:
    """A 4-layer, 64-wide GPT over a 512-token vocabulary (context 64)."""
    torch.manual_seed(0)
    return TinyGPT()


def gpt_with_a_broken_block() -> nn.Module:
    """:func:`tiny_gpt` with every weight matrix of ``blocks.2`` multiplied by 30."""
    model = tiny_gpt()
    with torch.no_grad():
        for parameter in model.blocks[2].parameters():
            if parameter.dim() >= 2:
                parameter.mul_(30)
    return model

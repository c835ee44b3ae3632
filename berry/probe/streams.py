"""Verdicts for a real model: each judged row against the stream it belongs to, by the trend over depth.

A model's modules do not all carry the signal. An embedding sets the scale
the network starts from (GPT-2 draws it with std 0.02), a norm resets it, a
head maps it to logits, and the modules inside a residual branch are meant
to be small beside the stream they add to. Judging every module against the
first one's output calls a healthy transformer "exploding". So the rows of
:func:`berry.torch.probe` carry a *role* and the verdict follows *streams*:

* ``"blocks"``: the signal between repeated blocks (a transformer layer, a
  residual block): the stream after each block, forward against the std
  entering the first block, backward against the gradient after the last;
* ``"layers"``: the other weighted layers of a plain stack (an MLP, a stem, a
  downsampling convolution), forward against the input of the first such
  layer, backward against the gradient at the last one's output.

Embeddings, norms, the head, activations and the layers inside a block are
reported, not judged. A stream fails where its ratio to the reference leaves
``[1/BAND, BAND]`` *and stays out*: the median of that row and the next
``WINDOW - 1`` judged rows of the same stream is out on the same side (fewer
at the end). One module's dip (a norm's gradient at 0.088 of its neighbours)
does not make a verdict; a signal that decays layer after layer, or a block
whose weights are 30 times too large, does, at the first row where it left. A block's verdict also names
its first module whose output is more than ``BAND`` times off the same module's in the blocks before it
(``Verdict.culprit``), when there is one.
That is how the studies of signal propagation read their plots (Poole et al.
2016, Schoenholz et al. 2017, and for residual streams Hanin & Rolnick 2018).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from berry.probe.report import BAND, LayerStats, Verdict, stream_references

__all__ = ["JUDGED_ROLES", "ROLES", "STREAMS", "WINDOW", "StreamVerdicts", "judge_streams", "judge_trend"]

#: What a row of a model's probe is; only "block" and "layer" rows are judged.
ROLES = ("embedding", "norm", "head", "block", "layer", "branch", "other")
JUDGED_ROLES = ("block", "layer")
#: The streams a verdict can follow (a judged row's ``stream``).
STREAMS = ("blocks", "layers")
#: Rows of a stream whose median decides whether a std that left the band stays out.
WINDOW = 3


def judge_trend(ratios: Sequence[float], *, layers: Sequence[int], names: Sequence[str], direction: str,
                reference: str) -> Verdict:
    """The verdict of one stream: ``ratios`` (std / reference) in the pass's order.

    The first non-finite ratio gives ``overflow``; otherwise the first ratio out of
    ``[1/BAND, BAND]`` whose window (it and the next ``WINDOW - 1`` ratios) has its
    median out on the same side gives ``exploding`` or ``vanishing``.

    >>> str(judge_trend([1, 0.05, 1, 1], layers=[1, 2, 3, 4], names="abcd", direction="backward", reference="r"))
    'stable'
    >>> str(judge_trend([1, 0.5, 0.09, 0.05, 0.02], layers=[1, 2, 3, 4, 5], names="abcde", direction="forward",
    ...                 reference="r"))
    'vanishing at layer 3 (c, forward)'
    """
    values = [float(r) for r in ratios]
    if not (len(values) == len(layers) == len(names)):
        raise ValueError(f"ratios, layers and names must have one entry each, got {len(values)}, {len(layers)}, "
                         f"{len(names)}")
    for value, layer, name in zip(values, layers, names, strict=True):
        if not math.isfinite(value):
            return Verdict("overflow", layer, direction, name, reference)
    for index, (value, layer, name) in enumerate(zip(values, layers, names, strict=True)):
        if 1 / BAND <= value <= BAND:
            continue
        median = float(np.median(values[index:index + WINDOW]))
        if value > BAND and median > BAND:
            return Verdict("exploding", layer, direction, name, reference)
        if value < 1 / BAND and median < 1 / BAND:
            return Verdict("vanishing", layer, direction, name, reference)
    return Verdict("stable", reference=reference)


@dataclass(frozen=True)
class StreamVerdicts:
    """Both passes' verdicts, and a sentence per stream saying what it was judged against."""

    forward: Verdict
    backward: Verdict
    references: tuple[str, ...]


def _stable(references: list[str]) -> Verdict:
    return Verdict("stable", reference="; ".join(references) if references else "no judged rows")


def judge_streams(layers: Sequence[LayerStats]) -> StreamVerdicts:
    """Judge each stream of a model's rows (see the module's docstring); the earliest failure in each pass wins.

    A non-finite output or gradient std on any row, judged or not, is an ``overflow`` there.
    """
    forward_found: list[Verdict] = []
    backward_found: list[Verdict] = []
    references: list[str] = []
    for row in layers:
        if not math.isfinite(row.output_std):
            forward_found.append(Verdict("overflow", row.layer, "forward", row.name, "any module output"))
            break
    for row in reversed(layers):
        if row.grad_std is not None and not math.isfinite(row.grad_std):
            backward_found.append(Verdict("overflow", row.layer, "backward", row.name, "any module gradient"))
            break
    for stream, (entering, start) in stream_references(layers).items():
        rows = [row for row in layers if row.stream == stream]
        label = "the stream after each block" if stream == "blocks" else "each layer's output"
        if entering is not None and entering > 0:
            forward_ref = f"{stream}: {label} / the std entering {rows[0].name} ({entering:.3g})"
            forward_found.append(judge_trend([r.output_std / entering for r in rows], layers=[r.layer for r in rows],
                                             names=[r.name for r in rows], direction="forward",
                                             reference=forward_ref))
            references.append(forward_ref)
        backward = [row for row in reversed(rows) if row.grad_std is not None]
        if start:
            backward_ref = f"{stream}: gradients / the gradient at {backward[0].name}'s output ({start:.3g})"
            backward_found.append(judge_trend([float(r.grad_std) / start for r in backward if r.grad_std is not None],
                                              layers=[r.layer for r in backward], names=[r.name for r in backward],
                                              direction="backward", reference=backward_ref))
            references.append(backward_ref)
    forward_found = [_with_culprit(v, layers) if v.kind in ("exploding", "vanishing") else v for v in forward_found]
    forward = _first([v for v in forward_found if v.kind != "stable"], backward=False)
    backward_verdict = _first([v for v in backward_found if v.kind != "stable"], backward=True)
    stable = _stable(references)
    return StreamVerdicts(forward or stable, backward_verdict or stable, tuple(references))


def _with_culprit(verdict: Verdict, layers: Sequence[LayerStats]) -> Verdict:
    """A block's forward verdict, with the first module inside it whose output is off its peers in earlier blocks.

    Peers are the modules at the same place (the same name after the block's) in the blocks before it (those
    after it see the broken stream); a module more than ``BAND`` times off their median is where the block's own
    weights broke the stream. When every block adds alike (a stream that grows with depth), there is none, and
    the depth is at fault.
    """
    blocks = [row.name for row in layers if row.role == "block" and "#" not in row.name]
    if verdict.name not in blocks:
        return verdict
    members: dict[str, dict[str, float]] = {name: {} for name in blocks}
    for row in layers:
        owner = next((name for name in blocks if row.name.startswith(name + ".")), None)
        if owner is not None and row.role != "block" and math.isfinite(row.output_std):
            members[owner][row.name[len(owner):]] = row.output_std
    earlier = blocks[:blocks.index(verdict.name)]  # the blocks after it see the broken stream: no peers
    for place, std in members[verdict.name].items():
        peers = [members[other][place] for other in earlier if place in members[other]]
        if peers:
            typical = float(np.median(peers))
            if typical > 0 and not 1 / BAND <= std / typical <= BAND:
                return replace(verdict, culprit=verdict.name + place)
    return verdict


def _first(verdicts: list[Verdict], *, backward: bool) -> Verdict | None:
    """Overflow wins; otherwise the earliest failure in the pass's order."""
    if not verdicts:
        return None
    overflow = [v for v in verdicts if v.kind == "overflow"]
    pool = overflow or verdicts
    return (max if backward else min)(pool, key=lambda v: v.layer if v.layer is not None else 0)

"""Signal-propagation probe: watch a deep network's signal explode or vanish, layer by layer.

The seed's whole argument is that weights that are too large make the signal
and its gradients explode, and weights that are too small make them vanish.
:func:`run` shows it: it builds deep networks whose weights are drawn with
:func:`berry.sample` (one rule per network, keyed by ``seed`` and the
parameter's name ``f"layer{i}.weight"``, so every run is reproducible),
propagates a batch of standard normal inputs forward and a standard normal
output gradient backward (exact backpropagation in NumPy), and reports per
layer

* the std of the layer's output ``h_l = x_{l-1} W_l`` (its pre-activations)
  and of its activations ``x_l = f(h_l)``,
* the std of the gradients with respect to the output (``dL/dh_l``) and to
  the weight (``dL/dW_l``),
* the fraction of dead units (zero derivative on the whole batch) and of
  saturated entries (derivative under a tenth of its peak),
* the mean-field prediction of the output's std and of its gradient's std,
  beside the measurement,

and one verdict per network: ``stable``, ``vanishing`` or ``exploding`` (with
the first layer where a std left ``[1/10, 10]`` times its starting value:
the input's std going forward, the output gradient's going backward), or
``overflow`` (inf or NaN).

The package
-----------
* :mod:`berry.probe.runner`: :func:`run`, the passes, bounded memory;
* :mod:`berry.probe.network`: the layer algebra (dense or circular
  convolution, see there) and the layers' weights;
* :mod:`berry.probe.mean_field`: the theory, :func:`mean_field`;
* :mod:`berry.probe.report`: :class:`ProbeReport` and its parts, the verdicts
  (:func:`judge`), tables and JSON (shared with :func:`berry.torch.probe`);
* :mod:`berry.probe.streams`: the verdicts of a real model's probe, per stream
  (the signal between repeated blocks, a plain stack's layers) against its own
  reference, by the trend over depth; embeddings, norms and heads are shown,
  not judged;
* :mod:`berry.probe.plot`: the picture (matplotlib, optional).

The networks
------------
``arch="mlp"``: ``depth`` dense layers of ``width`` units, no biases (zero
biases are the usual initialization), ``h_l = x_{l-1} W_l, x_l = f(h_l)``.
With ``residual=True`` each layer is a pre-activation residual block (He et
al. 2016, "Identity Mappings in Deep Residual Networks") with branch scale
``alpha`` (``branch_scale``, default 1),
``h_l = h_{l-1} + alpha f(h_{l-1}) W_l`` with ``h_0 = x_0``, so the stream
``h_l`` is the block's output and what the next activation sees. (The
branch ends in a weight, so it adds no mean: a branch ending in a ReLU would
pile its positive mean onto the stream and explode whatever the scale.)
``arch="conv"``: the same with 3x3 circular convolutions over ``width``
channels on 8x8 images.

The loss is ``L = sum(y * r)`` with ``y`` the output (``x_L``, or the
stream ``h_L``) and ``r`` standard normal (drawn from the same keyed stream),
so ``dL/dy = r``: a random direction, which gives the backward pass the
statistics the theory assumes.

Precision: the networks run in float32, as they would in training (so
``overflow`` means what it would mean there); every statistic is
accumulated in float64. Pass ``dtype="float64"`` for more headroom.

Examples
--------
>>> from berry import probe
>>> report = probe.run(["xavier", "he"], depth=20, width=64, batch_size=32)
>>> report.verdicts
{'xavier': 'vanishing', 'he': 'stable'}
>>> report["xavier"].verdict.layer <= 10
True
"""

from __future__ import annotations

from berry.probe.mean_field import MeanField, mean_field
from berry.probe.report import BAND, VERDICTS, LayerStats, NetworkProbe, ProbeReport, Verdict, judge
from berry.probe.runner import default_inits, run

__all__ = [
    "BAND",
    "VERDICTS",
    "LayerStats",
    "MeanField",
    "NetworkProbe",
    "ProbeReport",
    "Verdict",
    "default_inits",
    "judge",
    "mean_field",
    "run",
]

"""Pictures of a probe: the std of the signal and of its gradient, layer by layer.

matplotlib is optional (``pip install 'berry[plot]'``) and imported only
here, when a plot is asked for. The figure is drawn on matplotlib's Agg
canvas without ``pyplot``, so plotting never changes the backend or the
global state of an interactive session.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - annotations only: the report imports this module, not the reverse
    from berry.probe.report import NetworkProbe, ProbeReport

__all__ = ["plot_probe", "supported_formats"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<")
_STYLES = ("-", "--", "-.", (0, (5, 1.5, 1, 1.5)), (0, (3, 1)), "-", "--", "-.", ":")
_VERDICT_COLORS = {"stable": "#2ca02c", "vanishing": "#1f77b4", "exploding": "#d62728", "overflow": "#7f0000"}


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "plotting a probe needs matplotlib, an optional extra of berry: pip install 'berry[plot]'"
        ) from error
    del matplotlib
    return Figure


def supported_formats() -> dict[str, str]:
    """The file formats a picture can be saved in, by extension (``png``, ``svg``, ``pdf``...); needs matplotlib."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return dict(FigureCanvasAgg.get_supported_filetypes())


def _positive(values: np.ndarray) -> np.ndarray:
    """Values a log axis can show: zeros and non-finite values become gaps."""
    shown = np.array(values, dtype=float)
    shown[~np.isfinite(shown) | (shown <= 0)] = np.nan
    return shown


def _judged(network: NetworkProbe, quantity: str) -> tuple[np.ndarray, np.ndarray]:
    """A model's judged rows (the streams the verdict follows), each over its stream's reference."""
    references = network.stream_references()
    rows = [s for s in network.layers if s.judged]
    values = []
    for s in rows:
        forward, backward = references[s.stream]
        value, reference = (s.output_std, forward) if quantity == "output_std" else (s.grad_std, backward)
        values.append(np.nan if value is None or not reference else value / reference)
    return np.array([s.layer for s in rows], dtype=float), _positive(np.array(values, dtype=float))


def _legend_label(network: NetworkProbe, twin: NetworkProbe | None) -> str:
    verdict = network.verdict
    text = f"{network.label}: {verdict}"
    if twin is not None:
        text += f"  (= {twin.label})"  # same std on these layers: the very same network, drawn on top
    return text


def plot_probe(
    report: ProbeReport,
    path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    mean_field: bool = True,
    dpi: int = 150,
) -> Any:
    """Plot a probe: forward and backward std per layer on a log scale, one line per network.

    The left panel shows the std of the layers' outputs over the input's
    std, the right one the std of the gradients over the output gradient's
    (for a model's probe: the judged rows, each over its stream's reference,
    see :mod:`berry.probe.streams`);
    the band ``[1/10, 10]`` where a network counts as stable is shaded, the
    mean-field predictions are dotted, and the legend gives each network's
    verdict.

    Parameters
    ----------
    report:
        A :class:`berry.probe.report.ProbeReport`.
    path:
        Where to save the picture (format from the extension, e.g. ``.png``
        or ``.svg``); ``None`` only returns the figure.
    title:
        The figure's title (default: the report's).
    mean_field:
        Draw the mean-field predictions where the report has them.
    dpi:
        Resolution of a raster file.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from berry import probe
    >>> figure = probe.run(["xavier", "he"], depth=8, width=16).plot()  # doctest: +SKIP
    """
    band = report.band
    figure_class = _matplotlib()
    from matplotlib.ticker import MaxNLocator

    # Margins set by hand: a layout engine would draw the whole figure twice, doubling the time.
    figure = figure_class(figsize=(12.5, 5.4))
    forward_axes, backward_axes = figure.subplots(1, 2, sharey=False)
    if report.of_modules:
        signal, unit = "judged module outputs", "module call"
    else:
        signal, unit = ("block outputs" if report.config.get("residual") else "layer outputs (x W)"), "layer"
    forward_of, backward_of = ("std entering the stream", "gradient at the stream's end") if report.of_modules else (
        "std of input", "std of output gradient")
    panels = (
        (forward_axes, "output_std", "mean_field_std", "input_std",
         f"Forward: std of {signal} / {forward_of}", f"{unit}  (signal flows →)"),
        (backward_axes, "grad_std", "mean_field_grad_std", "output_grad_std",
         f"Backward: std of gradients / {backward_of}", f"{unit}  (gradients flow ←)"),
    )
    depth = max(len(network.layers) for network in report.networks)
    handles = []
    for axes, quantity, theory, reference_name, panel_title, xlabel in panels:
        axes.set_yscale("log")
        axes.axhspan(1 / band, band, color="#2ca02c", alpha=0.09, zorder=0, linewidth=0)
        for bound in (1 / band, band):
            axes.axhline(bound, color="#2ca02c", alpha=0.5, linewidth=0.8, linestyle=(0, (4, 3)), zorder=1)
        axes.axhline(1.0, color="0.6", linewidth=0.6, zorder=1)
        lowest, highest = 1 / band, band
        for index, network in enumerate(report.networks):
            twin = next((other for other in report.networks[:index] if other.layers == network.layers), None)
            if report.of_modules:
                layers, measured = _judged(network, quantity)
            else:
                reference = getattr(network, reference_name)
                if not (math.isfinite(reference) and reference > 0):
                    reference = 1.0
                layers = np.array([s.layer for s in network.layers])
                measured = _positive(network.series(quantity) / reference)
            color = _COLORS[index % len(_COLORS)]
            marker_every = max(1, len(layers) // 8)
            (line,) = axes.plot(
                layers, measured, color=color, linestyle=_STYLES[index % len(_STYLES)], linewidth=1.8,
                marker=_MARKERS[index % len(_MARKERS)], markersize=5,
                markevery=(index % marker_every, marker_every), label=_legend_label(network, twin), zorder=3,
            )
            if axes is forward_axes:
                handles.append(line)
            predicted = (np.full(len(layers), np.nan) if report.of_modules
                         else _positive(network.series(theory) / reference))
            if mean_field and np.isfinite(predicted).any():
                axes.plot(layers, predicted, color=color, linestyle=":", linewidth=1.1, alpha=0.8, zorder=2)
            finite = np.isfinite(measured)
            if network.verdict.kind == "overflow" and finite.any():
                last = np.flatnonzero(finite)[-1]
                axes.plot(layers[last], measured[last], marker="x", color=color, markersize=10, mew=2, zorder=4)
            if finite.any():
                lowest = min(lowest, float(np.nanmin(measured)))
                highest = max(highest, float(np.nanmax(measured)))
        axes.set_ylim(lowest / 3, highest * 3)
        axes.set_xlim(0.5, depth + 0.5)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(panel_title, fontsize=11)
        axes.set_xlabel(xlabel)
        axes.grid(True, which="major", color="0.88", linewidth=0.6)
        axes.spines[["top", "right"]].set_visible(False)
        axes.text(0.99, 0.02, f"stable band [1/{band:g}, {band:g}]", transform=axes.transAxes, ha="right",
                  va="bottom", fontsize=8, color="#2ca02c")
    forward_axes.set_ylabel("relative std (log scale)")
    has_theory = mean_field and any(
        np.isfinite(network.series("mean_field_std")).any() for network in report.networks
    )
    if has_theory:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="0.3", linestyle=":", linewidth=1.1, label="mean-field prediction"))
    columns = min(3, len(handles))
    legend_rows = math.ceil(len(handles) / columns)
    figure.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.005), ncol=columns, frameon=False,
                  fontsize=9)
    figure.subplots_adjust(left=0.065, right=0.985, top=0.88, bottom=0.125 + 0.04 * legend_rows, wspace=0.16)
    figure.suptitle(title if title is not None else report.title(), fontsize=11, y=0.975)
    if path is not None:
        figure.savefig(os.fspath(path), dpi=dpi)
    return figure

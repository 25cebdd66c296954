"""Headless figures of spiking activity: each function returns a matplotlib ``Figure``.

Figures are built with the object-oriented API on the Agg canvas (no ``pyplot``, no display, no
global figure registry), so they work in training callbacks, on servers and in tests.

Inputs are time-first tensors or arrays, as everywhere in spikeexp: ``[T, N]`` for one sample or
``[T, batch, N]`` with ``sample`` choosing the batch entry; trailing feature dimensions
(``[T, batch, C, H, W]``) are flattened into one neuron axis. With ``dt`` (seconds) the time axis
is in milliseconds, without it in steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

ArrayLike = Any  # torch.Tensor or numpy array

_FIGSIZE = (6.4, 3.6)


def to_numpy(values: ArrayLike) -> np.ndarray:
    """A float numpy copy of ``values`` (a tensor is detached and moved to the CPU)."""
    if hasattr(values, "detach"):
        values = values.detach().to("cpu").float().numpy()
    return np.asarray(values, dtype=np.float64)


def select_sample(values: ArrayLike, sample: int = 0, name: str = "values") -> np.ndarray:
    """``[T, N]`` of one sample from ``[T, N]`` or ``[T, batch, ...]`` (features flattened)."""
    array = to_numpy(values)
    if array.ndim == 1:
        raise ValueError(f"{name} must be time-first [T, N] or [T, batch, ...] (got shape [T])")
    if array.ndim == 2:
        return array
    if not 0 <= sample < array.shape[1]:
        raise ValueError(
            f"sample must be in [0, {array.shape[1] - 1}] for {name} of batch size "
            f"{array.shape[1]} (got {sample})"
        )
    return array[:, sample].reshape(array.shape[0], -1)


def time_axis(steps: int, dt: float | None) -> tuple[np.ndarray, str]:
    """Times of ``steps`` steps (ms if ``dt`` (s) is given, else step indices) and a label."""
    if dt is None:
        return np.arange(steps, dtype=np.float64), "time step"
    if not dt > 0:
        raise ValueError(f"dt must be > 0 seconds (got {dt})")
    return np.arange(steps) * dt * 1e3, "time (ms)"


def _new_figure(figsize: tuple[float, float] = _FIGSIZE) -> tuple[Figure, Any]:
    figure = Figure(figsize=figsize, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def spike_raster(
    spikes: ArrayLike,
    dt: float | None = None,
    sample: int = 0,
    title: str = "spike raster",
) -> Figure:
    """One dot per spike: time on x, neuron index on y.

    Args:
        spikes: ``[T, N]`` or ``[T, batch, ...]`` of 0/1 (any non-zero value counts as a spike).
        dt: step length (s); the x axis is then in ms.
        sample: batch entry to show for batched input.
        title: axes title (the neuron and spike counts are appended).
    """
    grid = select_sample(spikes, sample, "spikes")
    steps, neurons = grid.shape
    times, label = time_axis(steps, dt)
    step_index, neuron_index = np.nonzero(grid)
    figure, ax = _new_figure()
    ax.scatter(times[step_index], neuron_index, s=16, marker="|", c="black", linewidths=1.0)
    step = times[1] - times[0] if steps > 1 else 1.0
    ax.set_xlim(times[0] - step / 2, times[-1] + step / 2)
    ax.set_ylim(-0.5, neurons - 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)
    ax.set_ylabel("neuron")
    ax.set_title(f"{title} ({neurons} neurons, {len(step_index)} spikes)")
    return figure


def value_heatmap(
    values: ArrayLike,
    dt: float | None = None,
    sample: int = 0,
    title: str = "input",
) -> Figure:
    """Analog values (e.g. input currents) over time as a heatmap: time on x, channel on y.

    Args:
        values: ``[T, N]`` or ``[T, batch, ...]``.
        dt: step length (s); the x axis is then in ms.
        sample: batch entry to show for batched input.
        title: axes title.
    """
    grid = select_sample(values, sample, "values")
    steps, channels = grid.shape
    times, label = time_axis(steps, dt)
    step = times[1] - times[0] if steps > 1 else 1.0
    figure, ax = _new_figure()
    extent = (times[0] - step / 2, times[-1] + step / 2, -0.5, channels - 0.5)
    image = ax.imshow(grid.T, aspect="auto", origin="lower", extent=extent, cmap="viridis")
    figure.colorbar(image, ax=ax, label="value")
    ax.set_xlabel(label)
    ax.set_ylabel("channel")
    ax.set_title(title)
    return figure


def voltage_traces(
    voltages: ArrayLike,
    threshold: float | ArrayLike | None = None,
    dt: float | None = None,
    neurons: Sequence[int] | None = None,
    sample: int = 0,
    spikes: ArrayLike | None = None,
    title: str = "membrane voltage",
) -> Figure:
    """Membrane voltage of a few neurons over time, with the firing threshold.

    Args:
        voltages: ``[T, N]`` or ``[T, batch, ...]`` membrane voltages.
        threshold: a constant threshold (one dashed horizontal line), or a per-neuron trajectory
            shaped like ``voltages`` (adaptive thresholds, e.g. LSNN), drawn dashed in each
            neuron's colour; ``None`` draws none.
        dt: step length (s); the x axis is then in ms.
        neurons: neuron indices to draw (default: the first 5).
        sample: batch entry to show for batched input.
        spikes: optional spikes shaped like ``voltages``; each spike is marked with a dot at the
            threshold (the recorded voltage is already reset after a spike).
        title: axes title.
    """
    grid = select_sample(voltages, sample, "voltages")
    steps, count = grid.shape
    chosen = list(range(min(5, count))) if neurons is None else list(neurons)
    bad = [index for index in chosen if not 0 <= index < count]
    if bad:
        raise ValueError(f"neurons must be indices in [0, {count - 1}] (got {bad[0]})")
    times, label = time_axis(steps, dt)
    dynamic = None
    if threshold is not None and not np.isscalar(threshold):
        dynamic = select_sample(threshold, sample, "threshold")
        if dynamic.shape != grid.shape:
            raise ValueError(
                f"threshold must be a number or shaped like voltages {grid.shape} "
                f"(got {dynamic.shape})"
            )
    spike_grid = None if spikes is None else select_sample(spikes, sample, "spikes")
    figure, ax = _new_figure()
    for index in chosen:
        (line,) = ax.plot(times, grid[:, index], lw=1.0, label=f"neuron {index}")
        if dynamic is not None:
            ax.plot(times, dynamic[:, index], ls="--", lw=0.8, color=line.get_color())
        if spike_grid is not None:
            fired = np.nonzero(spike_grid[:, index])[0]
            level = dynamic[fired, index] if dynamic is not None else threshold
            level = grid[fired, index] if level is None else level
            ax.plot(
                times[fired], np.broadcast_to(level, fired.shape), "o", ms=3, color=line.get_color()
            )
    if dynamic is None and threshold is not None:
        ax.axhline(float(threshold), ls="--", lw=1.0, color="black", label="threshold")
    ax.set_xlabel(label)
    ax.set_ylabel("membrane voltage")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return figure


def mask_intervals(mask: ArrayLike) -> list[tuple[int, int]]:
    """Contiguous runs of true steps in a 1-D mask as ``[start, stop)`` step intervals."""
    flags = to_numpy(mask).reshape(-1) != 0
    edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    starts = np.nonzero(edges == 1)[0]
    stops = np.nonzero(edges == -1)[0]
    return [(int(start), int(stop)) for start, stop in zip(starts, stops, strict=True)]


def readout_traces(
    readout: ArrayLike,
    dt: float | None = None,
    sample: int = 0,
    periods: Mapping[str, ArrayLike] | None = None,
    labels: Sequence[str] | None = None,
    title: str = "readout",
) -> Figure:
    """Readout values (LI voltages or outputs) of every output unit over time.

    Args:
        readout: ``[T, C]`` or ``[T, batch, C]``.
        dt: step length (s); the x axis is then in ms.
        sample: batch entry to show for batched input.
        periods: named step masks (``{"store": mask, "recall": mask}``), each ``[T]`` or
            ``[T, batch]``; every contiguous run of true steps is shaded in that period's colour.
        labels: legend names of the output units (default ``out 0``, ``out 1``, ...).
        title: axes title.
    """
    grid = select_sample(readout, sample, "readout")
    steps, units = grid.shape
    names = [f"out {index}" for index in range(units)] if labels is None else list(labels)
    if len(names) != units:
        raise ValueError(f"labels must name {units} output units (got {len(names)})")
    times, label = time_axis(steps, dt)
    step = times[1] - times[0] if steps > 1 else 1.0
    figure, ax = _new_figure()
    colours = ("tab:green", "tab:red", "tab:purple", "tab:olive", "tab:cyan")
    for number, (name, mask) in enumerate((periods or {}).items()):
        flags = to_numpy(mask)
        flags = flags[:, sample] if flags.ndim == 2 else flags
        if flags.shape != (steps,):
            raise ValueError(f"periods[{name!r}] must have {steps} steps (got {flags.shape[0]})")
        for index, (start, stop) in enumerate(mask_intervals(flags)):
            ax.axvspan(
                times[start] - step / 2,
                times[stop - 1] + step / 2,
                color=colours[number % len(colours)],
                alpha=0.2,
                label=name if index == 0 else None,
            )
    for index in range(units):
        ax.plot(times, grid[:, index], lw=1.0, label=names[index])
    ax.set_xlabel(label)
    ax.set_ylabel("readout")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return figure


def firing_rate_histogram(
    spikes: ArrayLike,
    dt: float,
    bins: int = 30,
    title: str = "firing rates",
) -> Figure:
    """Histogram of per-neuron firing rates (Hz) over all steps and samples of ``spikes``.

    Args:
        spikes: ``[T, N]`` or ``[T, batch, ...]``; a neuron's rate is its mean spikes per step
            divided by ``dt``.
        dt: step length (s).
        bins: histogram bins between 0 and the highest rate (``1 / dt`` if all are silent).
        title: axes title (the silent-neuron count is appended).
    """
    rates = neuron_rates_hz(spikes, dt)
    figure, ax = _new_figure()
    upper = float(rates.max()) if rates.max() > 0 else 1.0 / dt
    ax.hist(rates, bins=bins, range=(0.0, upper), color="tab:blue")
    ax.set_xlabel("firing rate (Hz)")
    ax.set_ylabel("neurons")
    silent = int(np.sum(rates == 0))
    ax.set_title(f"{title} (mean {rates.mean():.1f} Hz, {silent}/{rates.size} silent)")
    return figure


def neuron_rates_hz(spikes: ArrayLike, dt: float) -> np.ndarray:
    """Per-neuron firing rates (Hz): spikes per step over time and batch, divided by ``dt`` (s)."""
    if not dt > 0:
        raise ValueError(f"dt must be > 0 seconds (got {dt})")
    array = to_numpy(spikes)
    if array.ndim < 2:
        raise ValueError(f"spikes must be time-first [T, N] or [T, batch, ...] (got {array.shape})")
    flat = (
        array.reshape(array.shape[0], -1)
        if array.ndim == 2
        else array.reshape(array.shape[0] * array.shape[1], -1)
    )
    return flat.mean(axis=0) / dt


def weight_histograms(
    weights: Mapping[str, ArrayLike],
    bins: int = 40,
    title: str = "weights",
) -> Figure:
    """One histogram panel per named weight tensor (``{"fc1.weight": tensor, ...}``)."""
    if not weights:
        raise ValueError("weights must name at least one tensor (got none)")
    figure = Figure(figsize=(3.2 * len(weights), 3.0), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(weights), squeeze=False)[0]
    for ax, (name, tensor) in zip(axes, weights.items(), strict=True):
        values = to_numpy(tensor).reshape(-1)
        ax.hist(values, bins=bins, color="tab:orange")
        ax.set_title(f"{name}\nmean {values.mean():.3g}, std {values.std():.3g}", fontsize="small")
        ax.set_xlabel("weight")
    axes[0].set_ylabel("count")
    figure.suptitle(title)
    return figure


def figure_to_array(figure: Figure) -> np.ndarray:
    """The rendered figure as an RGB ``uint8`` array ``[height, width, 3]`` (pixels)."""
    canvas = (
        figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    )
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()

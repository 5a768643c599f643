"""Matplotlib figures of ECGs, training curves and feature distributions.

Every function returns its :class:`~matplotlib.figure.Figure` (created with pyplot, so notebooks
show it inline; close it with ``plt.close(fig)`` in loops) and, given ``path``, also saves it
atomically (PNG unless the suffix says otherwise). The Agg backend is selected only when no backend
has been chosen yet (scripts, CI); an inline or interactive backend is left alone.

ECGs are (T, 12) arrays in mV in PTB-XL lead order, sampled at ``fs`` Hz (100 Hz by default).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd

from rare_gan.atomic import atomic_path
from rare_gan.leads import DISPLAY_NAMES, N_LEADS, SAMPLING_RATE_HZ

__all__ = [
    "CLINICAL_LAYOUT",
    "plot_12lead",
    "plot_12lead_grid",
    "plot_architecture",
    "plot_distributions",
    "plot_loss_curves",
    "plot_prevalence",
    "plot_real_vs_synthetic",
]

# ECG paper: 25 mm/s, 10 mm/mV; small boxes 0.04 s x 0.1 mV, large boxes 0.2 s x 0.5 mV.
MM_PER_S = 25.0
MM_PER_MV = 10.0
MINOR_S, MINOR_MV, MAJOR_EVERY = 0.04, 0.1, 5
PAPER_BG, PAPER_MINOR, PAPER_MAJOR = "#fff8f8", "#f7c6cb", "#e3868f"
SYNTHETIC_COLOR = "firebrick"

CLINICAL_LAYOUT: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
"""Leads of the 3 x 4 panel block (rows), each column covering a quarter of the record."""
RHYTHM_LEAD = "II"

_MARGIN_MM = {"left": 8.0, "right": 8.0, "top": 14.0, "bottom": 9.0}
_MIN_HALF_ROW_MV = 1.5  # every row shows at least ±1.5 mV
_MAX_HALF_ROW_MV = 5.0  # and at most ±5 mV (beyond is clipped: broken generator output)
_GRID_SPACING_MV = 4.0  # lead spacing in the compact grid view


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def pyplot():
    """matplotlib.pyplot, after choosing Agg only if no backend was set (env, rc, notebook, use())."""
    getter = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
    if getter is not None and getter() is None and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: float):
    """Save ``fig`` to ``path`` atomically (format from the suffix, PNG by default); return ``fig``."""
    if path is not None:
        path = Path(path)
        fmt = path.suffix.lstrip(".").lower() or "png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt, facecolor="white")
    return fig


def _lead(name: str) -> int:
    return DISPLAY_NAMES.index(name)


def _as_ecg(ecg, what: str = "ecg") -> np.ndarray:
    """(T, 12) float array in mV with non-finite samples as NaN (drawn as gaps)."""
    x = np.array(ecg, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != N_LEADS:
        raise ValueError(f"{what} must have shape (T, {N_LEADS}) in PTB-XL lead order, got {x.shape}")
    x[~np.isfinite(x)] = np.nan
    return x


def _as_batch(ecgs) -> np.ndarray:
    x = np.array(ecgs, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != N_LEADS:
        raise ValueError(f"ecgs must have shape (n, T, {N_LEADS}), got {x.shape}")
    x[~np.isfinite(x)] = np.nan
    return x


def _baseline_removed(x: np.ndarray) -> np.ndarray:
    """Subtract each lead's median (constant offset only: wander is kept, as on paper)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        med = np.nanmedian(x, axis=-2, keepdims=True)
    return x - np.nan_to_num(med)


def _grid_positions(lo: float, hi: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid line positions (multiples of ``step`` in [lo, hi]) and whether each is a major line."""
    k = np.arange(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)
    return k * step, k % MAJOR_EVERY == 0


def _paper(ax, x0: float, x1: float, y0: float, y1: float, minor: bool = True) -> None:
    """Draw ECG paper (two LineCollections, fast) on ``ax`` and fix its limits; no ticks or spines."""
    from matplotlib.collections import LineCollection

    xs, xmaj = _grid_positions(x0, x1, MINOR_S)
    ys, ymaj = _grid_positions(y0, y1, MINOR_MV)

    def segments(xv, yv):
        vert = np.stack([np.stack([xv, np.full_like(xv, y0)], -1), np.stack([xv, np.full_like(xv, y1)], -1)], 1)
        horiz = np.stack([np.stack([np.full_like(yv, x0), yv], -1), np.stack([np.full_like(yv, x1), yv], -1)], 1)
        return np.concatenate([vert, horiz])

    if minor:
        ax.add_collection(LineCollection(segments(xs[~xmaj], ys[~ymaj]), colors=PAPER_MINOR, linewidths=0.3,
                                         zorder=0), autolim=False)
    ax.add_collection(LineCollection(segments(xs[xmaj], ys[ymaj]), colors=PAPER_MAJOR, linewidths=0.6, zorder=0.5),
                      autolim=False)
    ax.set_facecolor(PAPER_BG)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _row_limits(values: np.ndarray) -> tuple[float, float]:
    """y-limits (mV) of a panel row: the data ±0.25 mV, whole 0.5 mV boxes, within ±1.5..±5 mV."""
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    lo = max(min(lo - 0.25, -_MIN_HALF_ROW_MV), -_MAX_HALF_ROW_MV)
    hi = min(max(hi + 0.25, _MIN_HALF_ROW_MV), _MAX_HALF_ROW_MV)
    return math.floor(lo / 0.5) * 0.5, math.ceil(hi / 0.5) * 0.5


def _clinical_limits(x: np.ndarray) -> list[tuple[float, float]]:
    """Row limits of the 3 panel rows and the rhythm strip of a baseline-removed ECG."""
    n = x.shape[0]
    limits = []
    for row in CLINICAL_LAYOUT:
        parts = []
        for col, name in enumerate(row):
            i0, i1 = round(col * n / 4), round((col + 1) * n / 4)
            parts.append(x[i0:i1, _lead(name)])
        limits.append(_row_limits(np.concatenate(parts)))
    limits.append(_row_limits(x[:, _lead(RHYTHM_LEAD)]))
    return limits


def _clinical_size_mm(n_samples: int, fs: float, limits) -> tuple[float, float]:
    width = _MARGIN_MM["left"] + _MARGIN_MM["right"] + n_samples / fs * MM_PER_S
    height = _MARGIN_MM["top"] + _MARGIN_MM["bottom"] + sum(hi - lo for lo, hi in limits) * MM_PER_MV
    return width, height


def _title(title: str | None, synthetic: bool) -> str:
    if not synthetic:
        return title or ""
    if title and "SYNTHETIC" in title:
        return title
    return f"SYNTHETIC — {title}" if title else "SYNTHETIC"


def _draw_clinical(container, x: np.ndarray, fs: float, limits, size_mm, title: str | None,
                   synthetic: bool) -> list:
    """Draw the 3 x 4 + rhythm-strip layout into a Figure or SubFigure; return its 13 axes."""
    width, height = size_mm
    n = x.shape[0]
    t = np.arange(n) / fs
    col_s = n / fs / 4
    gs = container.add_gridspec(
        4, 4, height_ratios=[hi - lo for lo, hi in limits], hspace=0.0, wspace=0.0,
        left=_MARGIN_MM["left"] / width, right=1 - _MARGIN_MM["right"] / width,
        top=1 - _MARGIN_MM["top"] / height, bottom=_MARGIN_MM["bottom"] / height)
    axes = []
    label_style = dict(ha="left", va="top", fontsize=10, fontweight="bold", zorder=5,
                       bbox=dict(facecolor=PAPER_BG, edgecolor="none", pad=0.5, alpha=0.8))
    for r, row in enumerate(CLINICAL_LAYOUT):
        y0, y1 = limits[r]
        for c, name in enumerate(row):
            ax = container.add_subplot(gs[r, c])
            x0, x1 = c * col_s, (c + 1) * col_s
            _paper(ax, x0, x1, y0, y1)
            i0, i1 = round(c * n / 4), min(round((c + 1) * n / 4) + 1, n)
            ax.plot(t[i0:i1], x[i0:i1, _lead(name)], color="black", lw=0.8)
            if c:  # lead-change marker, as printed
                ax.vlines(x0, -0.3, 0.3, colors="black", linewidths=1.5, zorder=4)
            ax.text(x0 + 0.06, y1 - 0.1, name, **label_style)
            ax.set_label(name)
            axes.append(ax)
    y0, y1 = limits[3]
    ax = container.add_subplot(gs[3, :])
    _paper(ax, 0.0, n / fs, y0, y1)
    ax.plot(t, x[:, _lead(RHYTHM_LEAD)], color="black", lw=0.8)
    ax.text(0.06, y1 - 0.1, RHYTHM_LEAD, **label_style)
    ax.set_label(f"{RHYTHM_LEAD} rhythm")
    axes.append(ax)

    text = _title(title, synthetic)
    if text:
        container.suptitle(text, y=1 - 2.5 / height, va="top", fontsize=12, fontweight="bold",
                           color=SYNTHETIC_COLOR if synthetic else "black")
    container.text(_MARGIN_MM["left"] / width, 3.0 / height,
                   f"{MM_PER_S:g} mm/s   {MM_PER_MV:g} mm/mV   {fs:g} Hz   per-lead median offset removed",
                   fontsize=7, color="dimgray", va="bottom")
    if synthetic:
        container.text(0.5, 0.5, "SYNTHETIC", ha="center", va="center", rotation=18,
                       fontsize=min(width, 2.2 * height) / 4,
                       fontweight="bold", color=SYNTHETIC_COLOR, alpha=0.13, zorder=20, gid="synthetic-watermark")
    return axes


# ----------------------------------------------------------------------------------------------
# ECG figures
# ----------------------------------------------------------------------------------------------
def plot_12lead(ecg_mv, fs: float = SAMPLING_RATE_HZ, title: str | None = None, path=None,
                synthetic: bool = False, dpi: float = 150):
    """One ECG (T, 12) in mV as printed: 3 x 4 panels of T/4 each + a lead II rhythm strip.

    Rows I/aVR/V1/V4, II/aVL/V2/V5, III/aVF/V3/V6; column k shows seconds [k, k+1] x T/(4 fs)
    of its leads. True paper scale (25 mm/s, 10 mm/mV, grid 0.04 s / 0.1 mV minor, 0.2 s / 0.5 mV
    major); row heights follow the data (±1.5 to ±5 mV). ``synthetic`` adds "SYNTHETIC" to the
    title and a watermark. Axes are labelled with their lead (``ax.get_label()``).
    """
    plt = pyplot()
    x = _baseline_removed(_as_ecg(ecg_mv))
    limits = _clinical_limits(x)
    size = _clinical_size_mm(x.shape[0], fs, limits)
    fig = plt.figure(figsize=(size[0] / 25.4, size[1] / 25.4))
    _draw_clinical(fig, x, fs, limits, size, title, synthetic)
    return save_figure(fig, path, dpi)


def plot_real_vs_synthetic(real_ecg, synth_ecg, fs: float = SAMPLING_RATE_HZ, title: str | None = None,
                           labels: tuple[str, str] = ("Real", "SYNTHETIC"), stacked: bool = False, path=None,
                           dpi: float = 120):
    """A real and a synthetic ECG (T, 12) in mV in the clinical layout, side by side (or stacked).

    The synthetic one is titled and watermarked "SYNTHETIC"; ``title`` prefixes both panel titles.
    Both keep true paper scale, so their amplitudes compare directly.
    """
    plt = pyplot()
    xs = [_baseline_removed(_as_ecg(real_ecg, "real_ecg")), _baseline_removed(_as_ecg(synth_ecg, "synth_ecg"))]
    limits = [_clinical_limits(x) for x in xs]
    sizes = [_clinical_size_mm(x.shape[0], fs, lim) for x, lim in zip(xs, limits)]
    if stacked:
        fig_mm = (max(s[0] for s in sizes), sum(s[1] for s in sizes))
        subfigs = plt.figure(figsize=(fig_mm[0] / 25.4, fig_mm[1] / 25.4)).subfigures(
            2, 1, height_ratios=[s[1] for s in sizes])
        sizes = [(fig_mm[0], s[1]) for s in sizes]
    else:
        fig_mm = (sum(s[0] for s in sizes), max(s[1] for s in sizes))
        subfigs = plt.figure(figsize=(fig_mm[0] / 25.4, fig_mm[1] / 25.4)).subfigures(
            1, 2, width_ratios=[s[0] for s in sizes])
        sizes = [(s[0], fig_mm[1]) for s in sizes]
    for k, (sub, x, lim, size) in enumerate(zip(subfigs, xs, limits, sizes)):
        label = f"{title} — {labels[k]}" if title else labels[k]
        _draw_clinical(sub, x, fs, lim, size, label, synthetic=(k == 1))
    return save_figure(subfigs[0].figure, path, dpi)


def plot_real_and_synthetic_grid(real_ecgs, synth_ecgs, fs: float = SAMPLING_RATE_HZ, title: str | None = None,
                                 path=None, dpi: float = 80):
    """Real ECGs (left column) beside synthetic ones (right column, watermarked), each in the clinical layout.

    ``real_ecgs`` and ``synth_ecgs``: (n, T, 12) in mV, the same n (draw them at random: the figure
    is meant to show typical ECGs, not chosen ones). Paper scale as :func:`plot_12lead`.
    """
    plt = pyplot()
    real, synth = _as_batch(real_ecgs), _as_batch(synth_ecgs)
    if len(real) != len(synth) or len(real) == 0:
        raise ValueError(f"need the same, non-zero number of real and synthetic ECGs, got {len(real)} and {len(synth)}")
    xs = [[_baseline_removed(e) for e in batch] for batch in (real, synth)]
    limits = [[_clinical_limits(x) for x in col] for col in xs]
    sizes = [[_clinical_size_mm(x.shape[0], fs, lim) for x, lim in zip(col, lims)] for col, lims in zip(xs, limits)]
    width = sum(max(s[0] for s in col) for col in sizes)
    heights = [max(sizes[0][i][1], sizes[1][i][1]) for i in range(len(real))]
    header = 12.0 if title else 0.0
    fig = plt.figure(figsize=(width / 25.4, (sum(heights) + header) / 25.4))
    body = fig
    if title:  # a header band of its own, so the title never overlaps the first row's labels
        head, body = fig.subfigures(2, 1, height_ratios=[header, sum(heights)])
        head.suptitle(title, fontsize=14, fontweight="bold", y=0.5, va="center")
    grid = body.subfigures(len(real), 2, height_ratios=heights, squeeze=False)
    for i in range(len(real)):
        for k, label in enumerate(("Real", "SYNTHETIC")):
            size = (max(s[0] for s in sizes[k]), heights[i])
            _draw_clinical(grid[i, k], xs[k][i], fs, limits[k][i], size, f"{label} #{i + 1}", synthetic=(k == 1))
    return save_figure(fig, path, dpi)


def plot_12lead_grid(ecgs, titles: Sequence[str] | None = None, fs: float = SAMPLING_RATE_HZ,
                     leads: Sequence[str] = ("II", "V1"), ncols: int = 4, title: str | None = None, path=None,
                     synthetic: bool = False, dpi: float = 100):
    """Compact view of several ECGs (n, T, 12) in mV: ``leads`` stacked per ECG, one panel each.

    Meant for fixed-noise sample grids during training (16 ECGs draw in well under a second).
    Not to paper scale: the grid is 0.2 s x 0.5 mV, leads are 4 mV apart and clipped at ±2 mV.
    Panel titles are ``titles`` (default "#i").
    """
    plt = pyplot()
    x = _baseline_removed(_as_batch(ecgs))
    n, n_samples = x.shape[0], x.shape[1]
    idx = [_lead(name) for name in leads]
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} ECGs")
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    cell_h = 0.32 + 0.5 * len(idx)
    fig = plt.figure(figsize=(3.6 * ncols, cell_h * nrows + 0.45))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.45 / (cell_h * nrows + 0.45),
                        wspace=0.04, hspace=0.32 / cell_h * 1.3)
    half = _GRID_SPACING_MV / 2
    t = np.arange(n_samples) / fs
    y0, y1 = -(len(idx) - 1) * _GRID_SPACING_MV - half, half
    for i in range(n):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        _paper(ax, 0.0, n_samples / fs, y0, y1, minor=False)
        for k, lead in enumerate(idx):
            offset = -k * _GRID_SPACING_MV
            ax.plot(t, np.clip(x[i, :, lead], -half, half) + offset, color="black", lw=0.6)
            ax.text(0.05, offset + half - 0.3, leads[k], fontsize=7, fontweight="bold", va="top", zorder=5)
        ax.set_title(titles[i] if titles is not None else f"#{i}", fontsize=8, pad=2)
    text = _title(title, synthetic)
    if text:
        fig.suptitle(text, fontsize=11, fontweight="bold", color=SYNTHETIC_COLOR if synthetic else "black",
                     y=1 - 0.08 / (cell_h * nrows + 0.45), va="top")
    return save_figure(fig, path, dpi)


# ----------------------------------------------------------------------------------------------
# Training and evaluation figures
# ----------------------------------------------------------------------------------------------
def plot_loss_curves(history: pd.DataFrame, path=None, title: str | None = None,
                     real_rr_sd_ms: float | None = None, dpi: float = 120):
    """Training history per epoch: d_loss/g_loss, then D(real)/D(fake), then rr_sd_ms (ms) if present.

    ``history`` has one row per epoch (column ``epoch``, else rows count from 1). Missing loss or D
    columns are skipped; ``real_rr_sd_ms`` draws the real data's RR-SD as a dashed reference.
    """
    plt = pyplot()
    epochs = history["epoch"].to_numpy() if "epoch" in history else np.arange(1, len(history) + 1)
    panels = [("loss", [("d_loss", "D loss"), ("g_loss", "G loss")]),
              ("mean D output", [("d_real", "D(real)"), ("d_fake", "D(fake)")])]
    if "rr_sd_ms" in history:
        panels.append(("RR SD (ms)", [("rr_sd_ms", "RR-SD, fixed-noise batch (median)")]))
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(8, 2.3 * len(panels) + 0.5), squeeze=False)
    marker = "o" if len(history) <= 30 else None
    for ax, (ylabel, cols) in zip(axes[:, 0], panels):
        for col, label in cols:
            if col in history:
                ax.plot(epochs, pd.to_numeric(history[col], errors="coerce"), marker=marker, ms=3, label=label)
        if ylabel.startswith("RR") and real_rr_sd_ms is not None and math.isfinite(real_rr_sd_ms):
            ax.axhline(real_rr_sd_ms, color="black", ls="--", lw=1, label=f"real data ({real_rr_sd_ms:.0f} ms)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("epoch")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi)


_UNITS = (("_bpm", "bpm"), ("_ms", "ms"), ("_mv", "mV"))


def _axis_label(column: str) -> str:
    for suffix, unit in _UNITS:
        if column.endswith(suffix):
            return f"{column[: -len(suffix)].replace('_', ' ')} ({unit})"
    return column.replace("_", " ")


def plot_distributions(frames: Mapping[str, pd.DataFrame], columns: Sequence[str], path=None,
                       bins: int = 30, kde: bool = True, title: str | None = None, dpi: float = 120):
    """Overlaid density histograms (+ KDE) of ``columns`` for each named frame, one panel per column.

    E.g. ``{"real": ..., "Initial": ..., "Modified": ...}`` of :func:`rare_gan.physiology.ecg_features`.
    NaN are dropped (n per frame in the legend); the x-range is the pooled 0.5–99.5 % range, values
    outside are drawn in the edge bins. A frame called "real" is drawn in black.
    """
    import seaborn as sns

    plt = pyplot()
    columns = list(columns)
    ncols = max(1, min(3, len(columns)))
    nrows = max(1, math.ceil(len(columns) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows + 0.3), squeeze=False)
    palette = iter(sns.color_palette("tab10"))
    colors = {name: ("black" if name.lower() == "real" else next(palette)) for name in frames}
    for ax, col in zip(axes.flat, columns):
        data = {}
        for name, df in frames.items():
            v = pd.to_numeric(df[col], errors="coerce").astype(float).to_numpy() if col in df else np.array([])
            data[name] = v[np.isfinite(v)]
        pooled = np.concatenate(list(data.values())) if data else np.array([])
        if pooled.size == 0:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        else:
            lo, hi = np.percentile(pooled, [0.5, 99.5])
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, bins + 1)
            for name, v in data.items():
                if v.size == 0:
                    continue
                v = np.clip(v, lo, hi)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sns.histplot(x=v, bins=edges, stat="density", element="step", fill=True, alpha=0.18,
                                 color=colors[name], kde=kde and v.size >= 3 and np.ptp(v) > 0, ax=ax,
                                 label=f"{name} (n={v.size})", line_kws={"lw": 1.6})
            ax.legend(fontsize=8)
        ax.set_xlabel(_axis_label(col))
        ax.set_ylabel("density")
        ax.set_title(col, fontsize=10)
    for ax in list(axes.flat)[len(columns):]:
        fig.delaxes(ax)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi)


def plot_prevalence(table: pd.DataFrame | pd.Series, column: str = "total", highlight: Sequence[str] = (),
                    rare_percent: float = 1.0, rare_count: int | None = None, path=None,
                    title: str | None = "Records per SCP code", dpi: float = 120):
    """Horizontal bar chart (log scale) of records per SCP code, most frequent on top.

    ``table`` is indexed by code (e.g. :meth:`rare_gan.data.PTBXL.prevalence`) with counts in
    ``column``, or is a Series of counts. Rare codes (``percent`` < ``rare_percent`` when that
    column exists, else count < ``rare_count``, default 1 % of the largest count) are orange;
    ``highlight`` codes (e.g. the target) are red and bold.
    """
    plt = pyplot()
    from matplotlib.patches import Patch

    counts = (table if isinstance(table, pd.Series) else table[column]).astype(float)
    if rare_count is not None:
        rare, rule = counts < rare_count, f"< {rare_count} records"
    elif isinstance(table, pd.DataFrame) and "percent" in table:
        rare, rule = table["percent"].astype(float) < rare_percent, f"< {rare_percent:g} % of records"
    else:
        rare, rule = counts < 0.01 * (counts.max() if len(counts) else 0), "< 1 % of the largest count"
    order = counts.sort_values(ascending=True, kind="stable").index
    counts, rare = counts.loc[order], rare.loc[order]
    highlight = set(highlight)
    colors = ["crimson" if code in highlight else "darkorange" if is_rare else "lightsteelblue"
              for code, is_rare in zip(counts.index, rare)]
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.17 * max(len(counts), 1)))
    y = np.arange(len(counts))
    ax.barh(y, counts.clip(lower=0).to_numpy(), color=colors, height=0.75)
    ax.set_xscale("log")
    ax.set_xlim(left=0.8, right=max(float(counts.max()) if len(counts) else 1.0, 1.0) * 3)
    ax.set_yticks(y, [str(c) for c in counts.index], fontsize=7)
    for label, code in zip(ax.get_yticklabels(), counts.index):
        if code in highlight:
            label.set_color("crimson")
            label.set_fontweight("bold")
    for yi, value in zip(y, counts.to_numpy()):
        ax.text(max(value, 0.8) * 1.08, yi, f"{value:.0f}", va="center", fontsize=6)
    ax.set_ylim(-0.6, len(counts) - 0.4)
    ax.set_xlabel(f"records ({column}, log scale)")
    ax.grid(axis="x", which="both", alpha=0.25)
    ax.set_axisbelow(True)
    handles = [Patch(color="lightsteelblue", label="common"), Patch(color="darkorange", label=f"rare ({rule})")]
    if highlight:
        handles.append(Patch(color="crimson", label="highlighted"))
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi)


def plot_architecture(model, path=None, dpi: float = 110):
    """A Keras model's layers as a vertical flow of boxes: name, kind, output shape and parameters.

    Custom blocks (InceptionBlock1D, ResidualInception1D) are drawn shaded; no graphviz needed.
    """
    from matplotlib.patches import FancyBboxPatch

    plt = pyplot()
    rows = []
    for layer in model.layers:
        shape = getattr(layer, "output", None)
        shape = tuple(shape.shape[1:]) if shape is not None else ()
        rows.append((layer.name, type(layer).__name__, shape, layer.count_params()))
    height = 0.42 * len(rows) + 0.8
    fig, ax = plt.subplots(figsize=(6.4, height))
    ax.set_xlim(0, 1)
    ax.set_ylim(-len(rows) + 0.3, 1.2)
    ax.axis("off")
    for i, (name, kind, shape, params) in enumerate(rows):
        y = -i
        custom = kind in ("InceptionBlock1D", "ResidualInception1D", "LeadConsistent12")
        ax.add_patch(FancyBboxPatch((0.05, y - 0.32), 0.9, 0.64, boxstyle="round,pad=0.02",
                                    facecolor="#dbe9f6" if custom else "#f4f4f4",
                                    edgecolor="#4a6d8c" if custom else "#999999"))
        ax.text(0.08, y, f"{name}", fontsize=8, fontweight="bold", va="center")
        ax.text(0.40, y, kind, fontsize=8, va="center")
        ax.text(0.70, y, f"{shape}", fontsize=8, va="center", family="monospace")
        ax.text(0.93, y, f"{params:,}", fontsize=7, va="center", ha="right", color="#555555")
        if i:
            ax.annotate("", xy=(0.5, y + 0.33), xytext=(0.5, y + 0.67), arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_title(f"{model.name}: {model.count_params():,} parameters", fontsize=10, fontweight="bold")
    return save_figure(fig, path, dpi)

"""rare_gan.plots: figure structure, lead placement, atomic PNG output, backend etiquette."""

from __future__ import annotations

import subprocess
import sys
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from rare_gan import plots
from rare_gan.leads import DISPLAY_NAMES, N_SAMPLES, SAMPLING_RATE_HZ

FS = SAMPLING_RATE_HZ
T = np.arange(N_SAMPLES) / FS


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def tagged_ecg() -> np.ndarray:
    """(1000, 12) ECG whose lead k is a 1 Hz sine of amplitude 0.1 * (k + 1) mV (identifiable)."""
    return np.stack([0.1 * (k + 1) * np.sin(2 * np.pi * T) for k in range(12)], axis=-1)


def assert_single_png(folder, name):
    files = sorted(p.name for p in folder.iterdir())
    assert files == [name], files  # no temporary leftovers
    data = (folder / name).read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_plot_12lead_layout_and_leads(tmp_path):
    ecg = tagged_ecg()
    fig = plots.plot_12lead(ecg, title="record 1", path=tmp_path / "ecg.png")
    assert_single_png(tmp_path, "ecg.png")
    assert len(fig.axes) == 13
    assert fig._suptitle.get_text() == "record 1"
    for r, row in enumerate([("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6")]):
        for c, name in enumerate(row):
            ax = fig.axes[4 * r + c]
            assert ax.get_label() == name
            assert [t.get_text() for t in ax.texts] == [name]
            assert ax.get_xlim() == pytest.approx((2.5 * c, 2.5 * (c + 1)))
            (line,) = ax.lines
            x, y = line.get_data()
            assert x.min() >= 2.5 * c - 1e-9 and x.max() <= 2.5 * (c + 1) + 0.011
            k = DISPLAY_NAMES.index(name)
            assert np.abs(y).max() == pytest.approx(0.1 * (k + 1), rel=0.02)  # this lead's data, not another's
    rhythm = fig.axes[12]
    assert rhythm.get_label() == "II rhythm" and [t.get_text() for t in rhythm.texts] == ["II"]
    assert rhythm.get_xlim() == pytest.approx((0.0, 10.0))
    assert rhythm.lines[0].get_xydata().shape == (N_SAMPLES, 2)
    # paper scale: 25 mm/s across the 10 s strip
    bbox = rhythm.get_position()
    width_mm = bbox.width * fig.get_figwidth() * 25.4
    assert width_mm == pytest.approx(250.0, rel=0.01)
    # row heights follow 10 mm/mV
    y0, y1 = rhythm.get_ylim()
    assert bbox.height * fig.get_figheight() * 25.4 == pytest.approx((y1 - y0) * 10.0, rel=0.01)
    assert not any(t.get_gid() == "synthetic-watermark" for t in fig.texts)


def test_plot_12lead_synthetic_is_marked():
    fig = plots.plot_12lead(tagged_ecg(), synthetic=True, title="epoch 7")
    assert "SYNTHETIC" in fig._suptitle.get_text() and "epoch 7" in fig._suptitle.get_text()
    assert any(t.get_gid() == "synthetic-watermark" and t.get_text() == "SYNTHETIC" for t in fig.texts)
    assert plots.plot_12lead(tagged_ecg(), synthetic=True)._suptitle.get_text() == "SYNTHETIC"


def test_plot_12lead_survives_broken_output():
    bad = np.full((N_SAMPLES, 12), np.nan)
    bad[:, 1] = 1e6 * np.sin(2 * np.pi * T)
    bad[10, 2] = np.inf
    fig = plots.plot_12lead(bad, synthetic=True)
    assert len(fig.axes) == 13
    fig.canvas.draw()
    with pytest.raises(ValueError, match=r"\(T, 12\)"):
        plots.plot_12lead(np.zeros((12, N_SAMPLES)))


def test_plot_12lead_grid_16_is_fast_and_complete(tmp_path):
    rng = np.random.default_rng(0)
    ecgs = tagged_ecg()[None] + rng.normal(0, 0.05, (16, N_SAMPLES, 12))
    t0 = time.process_time()  # CPU seconds of this process: not inflated by other tests running beside it
    fig = plots.plot_12lead_grid(ecgs, path=tmp_path / "grid.png", title="SYNTHETIC — run, epoch 3")
    assert time.process_time() - t0 < 2.0
    assert_single_png(tmp_path, "grid.png")
    assert len(fig.axes) == 16
    assert all(len(ax.lines) == 2 for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == [f"#{i}" for i in range(16)]
    assert [t.get_text() for t in fig.axes[0].texts] == ["II", "V1"]
    assert fig._suptitle.get_text() == "SYNTHETIC — run, epoch 3"


def test_plot_12lead_grid_titles_and_odd_counts():
    fig = plots.plot_12lead_grid(tagged_ecg()[None].repeat(5, 0), titles=list("abcde"), leads=("I", "aVR", "V6"),
                                 synthetic=True)
    assert len(fig.axes) == 5 and all(len(ax.lines) == 3 for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == list("abcde")
    assert fig._suptitle.get_text() == "SYNTHETIC"
    with pytest.raises(ValueError):
        plots.plot_12lead_grid(tagged_ecg()[None], titles=["a", "b"])


def test_plot_real_vs_synthetic(tmp_path):
    fig = plots.plot_real_vs_synthetic(tagged_ecg(), 2 * tagged_ecg(), title="AFLT", path=tmp_path / "rvs.png")
    assert_single_png(tmp_path, "rvs.png")
    assert len(fig.axes) == 26
    real, synth = fig.subfigs
    assert real._suptitle.get_text() == "AFLT — Real"
    assert synth._suptitle.get_text() == "AFLT — SYNTHETIC"
    assert any(t.get_gid() == "synthetic-watermark" for t in synth.texts)
    assert not any(t.get_gid() == "synthetic-watermark" for t in real.texts)
    stacked = plots.plot_real_vs_synthetic(tagged_ecg(), tagged_ecg(), stacked=True)
    assert len(stacked.axes) == 26 and len(stacked.subfigs) == 2


def history(n: int = 12, rr: bool = True) -> pd.DataFrame:
    df = pd.DataFrame({"epoch": np.arange(1, n + 1), "d_loss": np.linspace(1.4, 1.0, n),
                       "g_loss": np.linspace(0.7, 1.1, n),
                       "d_real": np.full(n, 0.6), "d_fake": np.full(n, 0.4)})
    if rr:
        df["rr_sd_ms"] = np.linspace(300, 60, n)
    return df


def test_plot_loss_curves(tmp_path):
    fig = plots.plot_loss_curves(history(), path=tmp_path / "loss.png", real_rr_sd_ms=55.0)
    assert_single_png(tmp_path, "loss.png")
    assert [len(ax.lines) for ax in fig.axes] == [2, 2, 2]
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["D(real)", "D(fake)"]
    assert fig.axes[2].lines[0].get_ydata()[0] == pytest.approx(300)
    fig2 = plots.plot_loss_curves(history(rr=False))
    assert [len(ax.lines) for ax in fig2.axes] == [2, 2]
    assert len(plots.plot_loss_curves(history(0)).axes) == 3  # empty history: no crash


def test_plot_distributions(tmp_path):
    rng = np.random.default_rng(1)
    real = pd.DataFrame({"rr_sd_ms": rng.gamma(2, 20, 200), "heart_rate_bpm": rng.normal(75, 10, 200)})
    synth = pd.DataFrame({"rr_sd_ms": np.r_[rng.gamma(2, 40, 50), np.nan],
                          "heart_rate_bpm": np.r_[rng.normal(90, 15, 50), 5000]})
    flat = pd.DataFrame({"rr_sd_ms": [np.nan], "heart_rate_bpm": [70.0]})
    fig = plots.plot_distributions({"real": real, "Initial": synth, "Modified": flat}, ["rr_sd_ms", "heart_rate_bpm"],
                                   path=tmp_path / "dist.png")
    assert_single_png(tmp_path, "dist.png")
    assert len(fig.axes) == 2
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["real (n=200)", "Initial (n=50)"]
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()][-1] == "Modified (n=1)"
    assert fig.axes[0].get_xlabel() == "rr sd (ms)" and fig.axes[1].get_xlabel() == "heart rate (bpm)"
    assert len(plots.plot_distributions({"real": real}, ["rr_sd_ms", "heart_rate_bpm", "rr_sd_ms", "x"]).axes) == 4


def test_plot_prevalence(tmp_path):
    table = pd.DataFrame({"total": [16000, 500, 73, 12, 0], "percent": [73.0, 2.3, 0.33, 0.05, 0.0]},
                         index=pd.Index(["SR", "PVC", "AFLT", "SVTAC", "XYZ"], name="code"))
    fig = plots.plot_prevalence(table, highlight=["AFLT"], path=tmp_path / "prev.png")
    assert_single_png(tmp_path, "prev.png")
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert len(ax.patches) == 5
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["XYZ", "SVTAC", "AFLT", "PVC", "SR"]  # most frequent on top
    colors = {code: bar.get_facecolor() for code, bar in zip(labels, ax.patches)}
    assert colors["AFLT"] != colors["SVTAC"] != colors["SR"]
    assert colors["XYZ"] == colors["SVTAC"]
    assert len(plots.plot_prevalence(table["total"], rare_count=100).axes[0].patches) == 5


def test_backend_left_alone_when_set():
    code = ("import matplotlib; matplotlib.use('svg'); import numpy as np; from rare_gan import plots; "
            "plots.plot_12lead_grid(np.zeros((2, 1000, 12))); print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().lower() == "svg"

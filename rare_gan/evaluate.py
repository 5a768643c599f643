"""The classification task behind every evaluation: one code vs every other record, on the real folds.

:func:`load_task` loads every record with its waveform, labels it *target SCP code(s) vs rest* and
scales it with one factor fitted on folds 1–8; :class:`Task` keeps the three PTB-XL splits (folds
1–8 / 9 / 10). How the splits are used is fixed in :mod:`rare_gan.utility` (train on 1–8, test on
9–10 together). :func:`jitter` and :func:`n_to_add` build the oversampling baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rare_gan.data import PTBXL, SPLIT_FOLDS, SignalScaler, load_metadata, load_signals

SPLITS = tuple(SPLIT_FOLDS)


@dataclass
class Task:
    """Target-vs-rest data on the real folds: scaled signals, labels and ids per split."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    ecg_ids: dict[str, np.ndarray]
    scaler: SignalScaler
    codes: list[str]
    data_root: str
    demo: bool

    @property
    def description(self) -> str:
        """The task in one sentence (print it next to every number)."""
        counts = ", ".join(f"{s} {int(self.y[s].sum())}/{len(self.y[s])}" for s in SPLITS)
        return (f"{'+'.join(self.codes)} vs rest, 12-lead 10 s ECGs at 100 Hz, trained on folds 1-8, tested on "
                f"folds 9+10 (positives/records per fold group: {counts}){' — DEMO data, not PTB-XL' if self.demo else ''}")

    def positives_mv(self, split: str) -> np.ndarray:
        """The real target ECGs of ``split`` in mV."""
        return self.scaler.inverse(self.x[split][self.y[split] == 1])

    def unseen_positives_mv(self) -> np.ndarray:
        """The real target ECGs no generator trains on (folds 9 and 10) in mV."""
        return np.concatenate([self.positives_mv("val"), self.positives_mv("test")])

    def digest(self, *settings) -> str:
        """A 20-character hash of the task's data folder, signals, labels and records and of ``settings``: the key
        of what is cached from real data alone (controls, the vetting classifier)."""
        import hashlib

        digest = hashlib.sha256("|".join(map(str, ("v1", self.data_root, *settings))).encode())
        for split in sorted(self.x):
            for array in (self.x[split], self.y[split], self.ecg_ids[split]):
                digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:20]


def load_task(data_dir: str | None, target: str | Sequence[str], meta: PTBXL | None = None) -> Task:
    """Load every on-disk record, label it target-vs-rest and scale with a scaler fit on folds 1–8."""
    meta = meta or load_metadata(data_dir, demo_fallback=True)
    codes = meta.validate_codes(target)
    positive = meta.has_codes(codes)
    signals = load_signals(meta, meta.select(on_disk=True), progress=False)
    split = meta.database.loc[signals.ecg_ids, "split"].to_numpy()
    labels = positive.loc[signals.ecg_ids].to_numpy().astype(np.int32)
    mv = np.asarray(signals.mv)
    scaler = SignalScaler.fit(mv[split == "train"])
    x, y, ids = {}, {}, {}
    for s in SPLITS:
        rows = split == s
        x[s], y[s], ids[s] = scaler.transform(mv[rows]), labels[rows], signals.ecg_ids[rows]
    return Task(x=x, y=y, ecg_ids=ids, scaler=scaler, codes=codes, data_root=str(meta.root), demo=meta.demo)


# ----------------------------------------------------------------------------------------------
# Training-set variants
# ----------------------------------------------------------------------------------------------
def n_to_add(n_total: int, n_pos: int, ratio: float) -> int:
    """Positives to add so that positives make up ``ratio`` of the set (0 if already there)."""
    if not 0 < ratio < 1:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    return max(0, math.ceil((ratio * n_total - n_pos) / (1 - ratio)))


def jitter(x: np.ndarray, rng: np.random.Generator, max_shift: int = 20, scale: float = 0.1,
           noise: float = 0.003, clip: bool = True) -> np.ndarray:
    """Classical augmentation of scaled ECGs: amplitude ×(1±scale), circular shift ≤ ``max_shift`` samples
    (0.2 s at 100 Hz), Gaussian noise of SD ``noise`` (scaled units; ≈0.01 mV), clipped to [-1, 1]
    unless ``clip`` is False (for ECGs in mV)."""
    gains = rng.uniform(1 - scale, 1 + scale, size=(len(x), 1, 1)).astype(np.float32)
    shifts = rng.integers(-max_shift, max_shift + 1, size=len(x))
    shifted = np.stack([np.roll(e, s, axis=0) for e, s in zip(x, shifts)]) if len(x) else x
    out = shifted * gains + rng.normal(0, noise, size=x.shape).astype(np.float32)
    return np.clip(out, -1, 1) if clip else out

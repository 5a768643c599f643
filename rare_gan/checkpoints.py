"""Atomic, resumable checkpoints of an :class:`~rare_gan.gan.ECGGAN`: both networks' weights and both optimisers' states.

A checkpoint is a folder ``checkpoints/epoch_NNNN`` written under a temporary name and renamed in
place, so a crash or a full disk never leaves a half-written one; ``state.json`` marks it complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from rare_gan import atomic


def _optimizer_state(optimizer) -> dict[str, np.ndarray]:
    return {f"v{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}


def _restore_optimizer(optimizer, state) -> None:
    values = [state[f"v{i:04d}"] for i in range(len(optimizer.variables))]
    if len(state.files) != len(values):
        raise ValueError("checkpoint optimiser state does not match this model")
    for var, value in zip(optimizer.variables, values):
        var.assign(value)


def save_checkpoint(run_dir: Path, gan, epoch: int, keep: int) -> Path:
    """Write ``checkpoints/epoch_NNNN`` atomically (temporary folder renamed in place); keep the newest ``keep``."""
    root = run_dir / "checkpoints"
    final = root / f"epoch_{epoch:04d}"
    tmp = root / f".tmp_epoch_{epoch:04d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        gan.generator.save_weights(tmp / "generator.weights.h5")
        gan.discriminator.save_weights(tmp / "discriminator.weights.h5")
        np.savez(tmp / "g_optimizer.npz", **_optimizer_state(gan.g_optimizer))
        np.savez(tmp / "d_optimizer.npz", **_optimizer_state(gan.d_optimizer))
        atomic.write_json(tmp / "state.json", {"epoch": epoch})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed save (disk full, interrupt) leaves the old ones
        raise
    for old in sorted(root.glob("epoch_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    done = [p for p in sorted((Path(run_dir) / "checkpoints").glob("epoch_*")) if (p / "state.json").is_file()]
    return done[-1] if done else None


def load_checkpoint(checkpoint: Path, gan) -> int:
    """Restore weights and optimiser states into ``gan``; return the checkpoint's epoch (1-based, completed)."""
    try:
        gan.generator.load_weights(checkpoint / "generator.weights.h5")
        gan.discriminator.load_weights(checkpoint / "discriminator.weights.h5")
    except ValueError as exc:
        raise ValueError(f"{checkpoint}: its weights do not fit this model's layers (written by another version of "
                         "rare_gan?); resume it with that version, or train again in a new run folder") from exc
    with np.load(checkpoint / "g_optimizer.npz") as state:
        _restore_optimizer(gan.g_optimizer, state)
    with np.load(checkpoint / "d_optimizer.npz") as state:
        _restore_optimizer(gan.d_optimizer, state)
    return int(json.loads((checkpoint / "state.json").read_text())["epoch"])

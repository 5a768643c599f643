"""Vetting: which generated ECGs may become candidates (``fake_arrhythmia_candidates/``).

A generated ECG is accepted only if all three hold:

* **confident**: a classifier trained on *real* folds 1–8 (the ``real`` variant of
  :mod:`rare_gan.evaluate`, seed 0) scores it at least as high as all but ``1 − specificity`` (10 %)
  of the *real non-target* ECGs of the validation fold — a threshold resting on hundreds of
  negatives rather than on the handful of validation positives a rare code has;
* **plausible**: :func:`rare_gan.physiology.ecg_features` finds ≥ 4 R-peaks, a heart rate of
  30–220 bpm and neurokit2 signal quality ≥ 0.66;
* **not a near-copy** of a training ECG (:func:`rare_gan.metrics.memorisation_report`: shift- and
  scale-invariant nearest-neighbour similarity against the GAN's training ECGs, compared with how
  close unseen real ECGs of the target (folds 9–10) come to them).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rare_gan import atomic, evaluate, export, metrics, physiology

CHECKS = ("confident", "plausible", "not_near_copy")
log = logging.getLogger(__name__)


def vet(ecgs_mv: np.ndarray, task: evaluate.Task, classifier_epochs: int, classifier_dir: str | Path | None,
        seed: int = 0, threshold: float | None = None, specificity: float = 0.9) -> pd.DataFrame:
    """Score every generated ECG (n, 1000, 12) mV; one row each with the checks and ``accepted``.

    The classifier threshold is the ``specificity`` quantile of its scores on the validation
    fold's real negatives (``threshold`` overrides it). The table's ``attrs`` hold the threshold
    and the memorisation summary.
    """
    model, scores = evaluate.fit_or_load(task, "real", seed, classifier_epochs, classifier_dir)
    if threshold is None:
        threshold = float(np.quantile(scores["val"][task.y["val"] == 0], specificity))
    probability = evaluate.predict_proba(model, task.scaler.transform(ecgs_mv))
    features = physiology.ecg_features(ecgs_mv, delineate=False)
    unseen = task.unseen_positives_mv()
    copies, memorisation = metrics.memorisation_report(ecgs_mv, task.positives_mv("train"), unseen)
    table = pd.concat([features.reset_index(drop=True), copies], axis=1)
    table.insert(0, "classifier_prob", probability)
    table.insert(0, "generated_id", np.arange(1, len(table) + 1))
    table["confident"] = table["classifier_prob"] >= threshold
    table["not_near_copy"] = ~table["near_copy"]
    table["accepted"] = table[list(CHECKS)].all(axis=1)
    table.attrs = {"threshold": float(threshold), "memorisation": memorisation}
    return table


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """How many generated ECGs pass each check and all of them."""
    counts = {c: int(scores[c].sum()) for c in (*CHECKS, "accepted")}
    return pd.DataFrame({"ECGs": counts, "percent": {k: 100 * v / max(len(scores), 1) for k, v in counts.items()}})


def write_outputs(ecgs_mv: np.ndarray, scores: pd.DataFrame, run, out_dir: str | Path, seed: int,
                  codes: list[str], data_root: str, subfolder: str | None = None) -> dict:
    """Write ``generated_ecgs/`` (all) and ``fake_arrhythmia_candidates/`` (accepted + ``candidates.csv``).

    ``run`` is the :class:`rare_gan.generate.GeneratorRun` that made the ECGs; its provenance and
    the generation ``seed`` go into every record's header. ``subfolder`` (a conditional run's code)
    puts both under ``generated_ecgs/<code>/`` and ``fake_arrhythmia_candidates/<code>/``.
    """
    out_dir = Path(out_dir)
    provenance = {**run.provenance, "generation_seed": seed, "generated_code": ",".join(codes)}
    statements = Path(data_root) / "scp_statements.csv"
    where = (lambda name: out_dir / name / subfolder) if subfolder else (lambda name: out_dir / name)
    export.write_synthetic_dataset(ecgs_mv, where("generated_ecgs"), codes, provenance, scores, statements)
    accepted = scores["accepted"].to_numpy()
    vetting = {"threshold": scores.attrs.get("threshold"), "n_generated": len(scores),
               "n_accepted": int(accepted.sum()), **{f"n_{c}": int(scores[c].sum()) for c in CHECKS},
               "memorisation": scores.attrs.get("memorisation"), "generation_seed": seed}
    export.write_synthetic_dataset(ecgs_mv[accepted], where("fake_arrhythmia_candidates"), codes, provenance,
                                   scores[accepted], statements,
                                   extra_files={"candidates.csv": scores.to_csv(index=False),
                                                "vetting.json": atomic.json_text(vetting)})
    return vetting


def generate_and_vet(run, out_dir: str | Path, n: int, seed: int, data_dir: str | None, classifier_epochs: int,
                     classifier_dir: str | Path | None, target: str | None = None) -> dict[str, tuple]:
    """Generate ``n`` ECGs per code, vet them and write the outputs; return {code: (ecgs_mv, scores)}.

    An unconditional run generates its target (one group, even for several codes); a conditional
    run generates each of its target codes (``target`` may pick some) into per-code subfolders.
    """
    from rare_gan import generate

    conditional = run.config.conditional
    codes = [c.strip().upper() for c in (target or ",".join(run.config.target)).split(",")]
    groups = codes if conditional else [",".join(codes)]
    results = {}
    for group in groups:
        task = evaluate.load_task(data_dir or run.config.data_dir, group)
        log.info("task: %s", task.description)
        ecgs = generate.generate(run, n, seed=seed, code=group if conditional else None)
        cache = Path(classifier_dir) / group if conditional and classifier_dir else classifier_dir
        scores = vet(ecgs, task, classifier_epochs, cache)
        write_outputs(ecgs, scores, run, out_dir, seed, task.codes, task.data_root, group if conditional else None)
        results[group] = (ecgs, scores)
    return results


def plot_examples(ecgs_mv: np.ndarray, scores: pd.DataFrame, n: int = 2):
    """Clinical-layout plots of up to ``n`` accepted and ``n`` rejected ECGs, titled with their scores."""
    from rare_gan import plots

    figures = []
    for accepted in (True, False):
        rows = scores[scores["accepted"] == accepted].head(n)
        for _, row in rows.iterrows():
            failed = [c for c in CHECKS if not row[c]]
            verdict = "accepted" if accepted else "rejected: " + ", ".join(failed)
            title = (f"generated #{row['generated_id']} — {verdict}; p={row['classifier_prob']:.2f}, "
                     f"HR {row['heart_rate_bpm']:.0f} bpm, RR-SD {row['rr_sd_ms']:.0f} ms, "
                     f"NN similarity {row['nn_similarity']:.2f}")
            figures.append(plots.plot_12lead(ecgs_mv[int(row["generated_id"]) - 1], title=title, synthetic=True))
    return figures

"""Vetting: which generated ECGs may become candidates (``fake_arrhythmia_candidates/``).

A generated ECG is accepted only if all three hold:

* **confident**: the feature classifier of :mod:`rare_gan.utility`, trained on *real* folds 1–8,
  scores it at least as high as all but ``1 − specificity`` (10 %) of the *real non-target* ECGs of
  folds 1–8 score out of fold (5-fold cross-validation) — a threshold resting on hundreds of
  negatives, chosen without the test folds 9–10;
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


def vet(ecgs_mv: np.ndarray, task: evaluate.Task, seed: int = 0, threshold: float | None = None,
        specificity: float = 0.9) -> pd.DataFrame:
    """Score every generated ECG (n, 1000, 12) mV; one row each with the checks and ``accepted``.

    The classifier threshold is the ``specificity`` quantile of the out-of-fold scores of the
    training folds' real negatives (``threshold`` overrides it). The table's ``attrs`` hold the
    threshold and the memorisation summary.
    """
    from rare_gan import utility

    family = utility.feature_family()
    model, oof_threshold = vetting_classifier(task, seed, specificity)
    threshold = oof_threshold if threshold is None else threshold
    probability = utility.scores_of(model, family.represent(ecgs_mv))
    physiology_table = physiology.ecg_features(ecgs_mv, delineate=False)
    copies, memorisation = metrics.memorisation_report(ecgs_mv, task.positives_mv("train"), task.unseen_positives_mv())
    table = pd.concat([physiology_table.reset_index(drop=True), copies], axis=1)
    table.insert(0, "classifier_prob", probability)
    table.insert(0, "generated_id", np.arange(1, len(table) + 1))
    table["confident"] = table["classifier_prob"] >= threshold
    table["not_near_copy"] = ~table["near_copy"]
    table["accepted"] = table[list(CHECKS)].all(axis=1)
    table.attrs = {"threshold": float(threshold), "memorisation": memorisation}
    return table


def vetting_classifier(task: evaluate.Task, seed: int = 0, specificity: float = 0.9):
    """(model, threshold) of :func:`vet`: the feature classifier fitted on the task's real training folds and the
    ``specificity`` quantile of its out-of-fold scores of their negatives.

    They depend on real data only, so they are cached on disk (``<cache>/vetting``) by the task's signals, labels
    and records, ``seed``, ``specificity``, the classifier and scikit-learn's version: every generation of a code
    after the first (Initial, Modified, both recipes) reuses them instead of six fits.
    """
    import pickle

    import sklearn

    from rare_gan import utility
    from rare_gan.data import cache_dir

    family = utility.feature_family()
    key = task.digest(seed, specificity, sklearn.__version__, family.description)
    path = Path(cache_dir()) / "vetting" / f"{'+'.join(task.codes)}_{key}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    rows = utility.real_rows(family, task)
    oof = utility.oof_scores(family, rows.train, rows.train_y, seed, folds=5)
    found = family.fit(rows.train, rows.train_y, seed, False), float(np.quantile(oof[rows.train_y == 0], specificity))
    with atomic.atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(found))
    return found


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """How many generated ECGs pass each check and all of them."""
    counts = {c: int(scores[c].sum()) for c in (*CHECKS, "accepted")}
    return pd.DataFrame({"ECGs": counts, "percent": {k: 100 * v / max(len(scores), 1) for k, v in counts.items()}})


def write_outputs(ecgs_mv: np.ndarray, scores: pd.DataFrame, run, out_dir: str | Path, seed: int,
                  codes: list[str], data_root: str) -> dict:
    """Write ``generated_ecgs/`` (all) and ``fake_arrhythmia_candidates/`` (accepted + ``candidates.csv``).

    ``run`` is the :class:`rare_gan.generate.GeneratorRun` that made the ECGs; its provenance and
    the generation ``seed`` go into every record's header.
    """
    out_dir = Path(out_dir)
    provenance = {**run.provenance, "generation_seed": seed, "generated_code": ",".join(codes)}
    statements = Path(data_root) / "scp_statements.csv"
    export.write_synthetic_dataset(ecgs_mv, out_dir / "generated_ecgs", codes, provenance, scores, statements)
    accepted = scores["accepted"].to_numpy()
    vetting = {"threshold": scores.attrs.get("threshold"), "n_generated": len(scores),
               "n_accepted": int(accepted.sum()), **{f"n_{c}": int(scores[c].sum()) for c in CHECKS},
               "memorisation": scores.attrs.get("memorisation"), "generation_seed": seed}
    export.write_synthetic_dataset(ecgs_mv[accepted], out_dir / "fake_arrhythmia_candidates", codes, provenance,
                                   scores[accepted], statements,
                                   extra_files={"candidates.csv": scores.to_csv(index=False),
                                                "vetting.json": atomic.json_text(vetting)})
    return vetting


def generate_and_vet(run, out_dir: str | Path, n: int, seed: int, data_dir: str | None = None,
                     target: str | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Generate ``n`` ECGs of the run's target (or ``target``), vet them, write the outputs; return (ECGs mV, scores)."""
    from rare_gan import generate

    codes = [c.strip().upper() for c in (target or ",".join(run.config.target)).split(",")]
    task = evaluate.load_task(data_dir or run.config.data_dir, codes)
    log.info("task: %s", task.description)
    ecgs = generate.generate(run, n, seed=seed, code=",".join(codes) if run.config.conditional else None)
    scores = vet(ecgs, task, seed=0)
    write_outputs(ecgs, scores, run, out_dir, seed, task.codes, task.data_root)
    return ecgs, scores


def plot_examples(ecgs_mv: np.ndarray, scores: pd.DataFrame, n: int = 2, seed: int = 0):
    """Clinical-layout plots of ``n`` randomly drawn accepted and ``n`` rejected ECGs, titled with their scores."""
    from rare_gan import plots

    figures = []
    for accepted in (True, False):
        rows = scores[scores["accepted"] == accepted]
        rows = rows.sample(min(n, len(rows)), random_state=seed)
        for _, row in rows.iterrows():
            failed = [c for c in CHECKS if not row[c]]
            verdict = "accepted" if accepted else "rejected: " + ", ".join(failed)
            title = (f"generated #{row['generated_id']} — {verdict}; p={row['classifier_prob']:.2f}, "
                     f"HR {row['heart_rate_bpm']:.0f} bpm, RR-SD {row['rr_sd_ms']:.0f} ms, "
                     f"NN similarity {row['nn_similarity']:.2f}")
            figures.append(plots.plot_12lead(ecgs_mv[int(row["generated_id"]) - 1], title=title, synthetic=True))
    return figures

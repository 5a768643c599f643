"""PTB-XL data layer: locate, validate, parse, split, load (cached) and scale 12-lead ECGs.

Conventions used everywhere in rare_gan:

* signals are float32 arrays ``(n, 1000, 12)`` in **mV** at **100 Hz** (PTB-XL ``records100``), leads in
  PTB-XL order I, II, III, aVR, aVL, aVF, V1–V6 (:data:`rare_gan.leads.LEAD_NAMES`);
* splits follow PTB-XL's recommendation: ``strat_fold`` 1–8 train, 9 validation, 10 test;
* a record "carries" an SCP code when the code is a key of its ``scp_codes`` dict, whatever its
  likelihood (see :func:`has_codes`).

Command line: ``python -m rare_gan.data {info,download,demo}`` (``--help`` for each).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import functools
import hashlib
import json
import logging
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from rare_gan import atomic
from rare_gan.leads import LEAD_NAMES, N_LEADS, N_SAMPLES, SAMPLING_RATE_HZ

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT / "data" / "ptbxl"
"""Where the project looks for PTB-XL when neither an argument nor ``PTBXL_DIR`` names a folder."""

TRAIN_FOLDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
VAL_FOLDS: tuple[int, ...] = (9,)
TEST_FOLDS: tuple[int, ...] = (10,)
SPLIT_FOLDS: dict[str, tuple[int, ...]] = {"train": TRAIN_FOLDS, "val": VAL_FOLDS, "test": TEST_FOLDS}

REQUIRED_FILES = ("ptbxl_database.csv", "scp_statements.csv")
REQUIRED_DIRS = ("records100",)
CACHE_VERSION = 1

GET_PTBXL_HELP = (
    "Get PTB-XL (v1.0.1, CC BY 4.0) with `python -m rare_gan.data download --dest data/ptbxl`, or download it "
    "from https://physionet.org/content/ptb-xl/1.0.1/ yourself, then point the project at the folder that holds "
    "ptbxl_database.csv: `export PTBXL_DIR=/path/to/ptb-xl`, `./run_all.sh --data /path/to/ptb-xl`, or the "
    "`data_dir` parameter of the notebooks. Without PTB-XL, `./run_all.sh` runs on the embedded DEMO dataset."
)


class DataError(Exception):
    """Base class of the data layer's errors; the message is meant for the user."""


class PTBXLNotFoundError(DataError, FileNotFoundError):
    """No PTB-XL folder in the official layout where one was expected."""


class MetadataError(DataError, ValueError):
    """``ptbxl_database.csv`` or ``scp_statements.csv`` holds something unreadable."""


class UnknownSCPCodeError(DataError, ValueError):
    """An SCP code that ``scp_statements.csv`` does not define."""


class RecordError(DataError):
    """One WFDB record is unusable (corrupt, truncated, wrong rate, wrong leads, NaN)."""


# ----------------------------------------------------------------------------------------------
# Locating and validating the folder
# ----------------------------------------------------------------------------------------------
def candidate_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder to use: ``data_dir`` if given, else ``$PTBXL_DIR``, else ``<repo>/data/ptbxl``."""
    if data_dir not in (None, ""):
        return Path(data_dir).expanduser()
    if os.environ.get("PTBXL_DIR"):
        return Path(os.environ["PTBXL_DIR"]).expanduser()
    return DEFAULT_DATA_DIR


def locate_ptbxl(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the PTB-XL root (see :func:`candidate_data_dir`) after checking the official layout.

    Raises :class:`PTBXLNotFoundError` naming what is missing and how to get PTB-XL.
    """
    root = candidate_data_dir(data_dir)
    if not root.is_dir():
        raise PTBXLNotFoundError(f"PTB-XL folder not found: {root}. {GET_PTBXL_HELP}")
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    missing += [name + "/" for name in REQUIRED_DIRS if not (root / name).is_dir()]
    if missing:
        raise PTBXLNotFoundError(
            f"{root} is not a PTB-XL folder in the official layout: missing {', '.join(missing)}. {GET_PTBXL_HELP}"
        )
    return root.resolve()


def resolve_dataset(data_dir: str | os.PathLike | None = None, demo_fallback: bool = True) -> Path:
    """Locate PTB-XL; when none is found and ``demo_fallback``, write/reuse the DEMO dataset instead.

    ``data_dir="demo"`` (or ``PTBXL_DIR=demo``) asks for the DEMO dataset explicitly. An explicitly
    given ``data_dir`` that is not PTB-XL is always an error (no silent fallback). Using the DEMO data
    prints :data:`rare_gan.demo.DEMO_BANNER` (once per process: every notebook shows it, a pipeline's
    log once) so nobody mistakes demo results for PTB-XL.
    """
    if str(data_dir or os.environ.get("PTBXL_DIR", "")).lower() == "demo":
        from rare_gan import demo

        _demo_banner()
        return demo.ensure_demo_dataset().resolve()
    explicit = data_dir not in (None, "") or bool(os.environ.get("PTBXL_DIR"))
    try:
        return locate_ptbxl(data_dir)
    except PTBXLNotFoundError:
        if explicit or not demo_fallback:
            raise
    from rare_gan import demo

    root = demo.ensure_demo_dataset().resolve()
    _demo_banner()
    log.warning("No PTB-XL found (%s); running on the DEMO dataset at %s", DEFAULT_DATA_DIR, root)
    return root


@functools.cache
def _demo_banner() -> None:
    from rare_gan import demo

    print(demo.DEMO_BANNER, file=sys.stderr)


def is_demo(root: str | os.PathLike) -> bool:
    """True when ``root`` is the embedded DEMO dataset rather than PTB-XL."""
    from rare_gan import demo

    return demo.is_demo_dataset(root)


# ----------------------------------------------------------------------------------------------
# Metadata
# ----------------------------------------------------------------------------------------------
def parse_scp_codes(text: object, ecg_id: object = "?") -> dict[str, float]:
    """Parse one ``scp_codes`` cell (a dict literal such as ``"{'NORM': 100.0, 'SR': 0.0}"``).

    Uses :func:`ast.literal_eval` (never ``eval``). Likelihoods are percentages (0–100).
    Raises :class:`MetadataError` naming the record when the cell is not a dict of code → number.
    """
    try:
        value = ast.literal_eval(text) if isinstance(text, str) else None
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise MetadataError(f"ecg_id {ecg_id}: malformed scp_codes {text!r} ({type(exc).__name__})") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in value.items()
    ):
        raise MetadataError(f"ecg_id {ecg_id}: scp_codes must be a dict of code -> likelihood, got {text!r}")
    return {k: float(v) for k, v in value.items()}


def split_of_fold(fold: int) -> str:
    """'train' (folds 1–8), 'val' (9) or 'test' (10)."""
    for split, folds in SPLIT_FOLDS.items():
        if int(fold) in folds:
            return split
    raise MetadataError(f"strat_fold must be 1-10, got {fold!r}")


@dataclass
class PTBXL:
    """Parsed PTB-XL metadata of one folder.

    ``database`` is indexed by ``ecg_id`` with ``scp_codes`` parsed to dicts and a ``split`` column;
    ``statements`` is indexed by SCP code; ``on_disk`` marks records whose WFDB files exist.
    """

    root: Path
    database: pd.DataFrame
    statements: pd.DataFrame
    demo: bool = False

    @property
    def codes(self) -> list[str]:
        """All SCP codes defined in ``scp_statements.csv``."""
        return list(self.statements.index)

    def validate_codes(self, codes: str | Iterable[str]) -> list[str]:
        """Normalise ``codes`` (a code, a comma list, or an iterable) to upper case and check them.

        Raises :class:`UnknownSCPCodeError` suggesting close matches (by code and by description).
        """
        if isinstance(codes, str):
            codes = [c for c in codes.replace(";", ",").split(",")]
        wanted = [c.strip().upper() for c in codes if c and c.strip()]
        if not wanted:
            raise UnknownSCPCodeError("no SCP code given: name at least one, e.g. 'AFLT' or ['BIGU', 'TRIGU']")
        known = set(self.statements.index)
        for code in wanted:
            if code not in known:
                raise UnknownSCPCodeError(f"unknown SCP code {code!r}; {self._suggest(code)}")
        return list(dict.fromkeys(wanted))

    def _suggest(self, code: str) -> str:
        close = difflib.get_close_matches(code, self.codes, n=5, cutoff=0.5)
        descriptions = self.statements["description"].fillna("").str.lower()
        close += [c for c, d in descriptions.items() if code.lower() in d and c not in close][:3]
        if not close:
            return "see scp_statements.csv or `python -m rare_gan.data info` for the list"
        return "did you mean " + ", ".join(f"{c} ({self.statements.at[c, 'description']})" for c in close) + "?"

    def has_codes(self, codes: str | Iterable[str], min_likelihood: float = 0.0) -> pd.Series:
        """Boolean Series over ``ecg_id``: the record carries any of ``codes`` with likelihood ≥ ``min_likelihood``.

        The default 0 counts every listed code: PTB-XL lists most rhythm statements with likelihood 0
        (no likelihood given: SR in all 16,782 records, AFIB in 1,466 of 1,514), so a positive
        threshold would silently drop most rhythm records. Raise it (e.g. 50, 100) only for
        diagnostic statements, whose likelihoods are meaningful.
        """
        wanted = set(self.validate_codes(codes))
        return self.database["scp_codes"].map(
            lambda d: any(k in wanted and v >= min_likelihood for k, v in d.items())
        ).astype(bool)

    def select(self, codes: str | Iterable[str] | None = None, split: str | None = None, on_disk: bool = True,
               min_likelihood: float = 0.0) -> pd.Index:
        """``ecg_id``s of records carrying ``codes`` (all records if None) in ``split`` ('train'/'val'/'test')."""
        mask = pd.Series(True, index=self.database.index)
        if codes is not None:
            mask &= self.has_codes(codes, min_likelihood)
        if split is not None:
            if split not in SPLIT_FOLDS:
                raise ValueError(f"split must be one of {sorted(SPLIT_FOLDS)}, got {split!r}")
            mask &= self.database["split"] == split
        if on_disk:
            mask &= self.database["on_disk"]
        return self.database.index[mask.to_numpy()]

    def diagnostic_superclasses(self) -> pd.Series:
        """Sorted list of diagnostic superclasses (NORM, MI, STTC, CD, HYP) per record.

        As in the PTB-XL benchmark: codes with ``diagnostic == 1`` mapped through ``diagnostic_class``.
        """
        diag = self.statements.loc[self.statements["diagnostic"] == 1, "diagnostic_class"].dropna().to_dict()
        return self.database["scp_codes"].map(lambda d: sorted({diag[k] for k in d if k in diag}))

    def prevalence(self, on_disk: bool = False) -> pd.DataFrame:
        """Records per SCP code, overall and per split, rarest first.

        Columns: description, kind (diagnostic/form/rhythm), train, val, test, total, percent
        (of the records counted). ``on_disk=True`` counts only records whose waveforms are present.
        """
        db = self.database[self.database["on_disk"]] if on_disk else self.database
        rows = Counter((code, split) for codes, split in zip(db["scp_codes"], db["split"]) for code in codes)
        table = pd.DataFrame(
            [(code, split, n) for (code, split), n in rows.items()], columns=["code", "split", "n"]
        ).pivot_table(index="code", columns="split", values="n", fill_value=0, aggfunc="sum")
        table = table.reindex(columns=list(SPLIT_FOLDS), fill_value=0).astype(int).rename_axis(columns=None)
        table["total"] = table.sum(axis=1)
        table["percent"] = 100.0 * table["total"] / max(len(db), 1)
        st = self.statements.reindex(table.index)
        kinds = np.select([st["rhythm"] == 1, st["form"] == 1, st["diagnostic"] == 1], ["rhythm", "form", "diagnostic"], "")
        table.insert(0, "kind", kinds)
        table.insert(0, "description", st["description"].fillna(""))
        return table.rename_axis("code").reset_index().sort_values(["total", "code"]).set_index("code")


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise MetadataError(f"cannot read {path}: {exc}") from None


def load_metadata(data_dir: str | os.PathLike | None = None, demo_fallback: bool = False) -> PTBXL:
    """Read and validate ``ptbxl_database.csv`` and ``scp_statements.csv`` of a PTB-XL folder.

    ``data_dir`` is resolved by :func:`resolve_dataset` (with ``demo_fallback``) or :func:`locate_ptbxl`.
    Raises :class:`MetadataError` for missing columns, a malformed ``scp_codes`` cell (naming the
    ecg_id) or a ``strat_fold`` outside 1–10.
    """
    root = resolve_dataset(data_dir, demo_fallback=demo_fallback)
    database = _read_csv(root / "ptbxl_database.csv")
    missing = {"ecg_id", "scp_codes", "strat_fold", "filename_lr"} - set(database.columns)
    if missing:
        raise MetadataError(f"{root / 'ptbxl_database.csv'} lacks columns {sorted(missing)}")
    database = database.set_index("ecg_id")
    database["scp_codes"] = [parse_scp_codes(t, i) for i, t in zip(database.index, database["scp_codes"])]
    folds = pd.to_numeric(database["strat_fold"], errors="coerce")
    if folds.isna().any() or not folds.between(1, 10).all():
        bad = database.index[(folds.isna() | ~folds.between(1, 10)).to_numpy()][:5].tolist()
        raise MetadataError(f"strat_fold must be an integer 1-10; bad rows ecg_id {bad}")
    database["strat_fold"] = folds.astype(int)
    database["split"] = database["strat_fold"].map(split_of_fold)
    database["on_disk"] = _records_on_disk(root, database["filename_lr"])
    statements = _read_csv(root / "scp_statements.csv", index_col=0)
    if "description" not in statements.columns:
        raise MetadataError(f"{root / 'scp_statements.csv'} lacks the description column")
    statements.index = statements.index.astype(str)
    meta = PTBXL(root=root, database=database, statements=statements, demo=is_demo(root))
    n_disk = int(database["on_disk"].sum())
    log.info("PTB-XL at %s: %d records in metadata, %d with waveforms on disk%s", root, len(database), n_disk,
             " (DEMO dataset)" if meta.demo else "")
    return meta


def _records_on_disk(root: Path, filenames: pd.Series) -> pd.Series:
    """True where both ``.hea`` and ``.dat`` exist (one directory listing per folder, fast on 21k files)."""
    listing: dict[Path, set[str]] = {}
    present = []
    for name in filenames.astype(str):
        path = root / name
        folder = path.parent
        if folder not in listing:
            listing[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
        present.append(path.name + ".hea" in listing[folder] and path.name + ".dat" in listing[folder])
    return pd.Series(present, index=filenames.index, dtype=bool)


# ----------------------------------------------------------------------------------------------
# Signals
# ----------------------------------------------------------------------------------------------
def record_name(ecg_id: int, rate: str = "lr") -> str:
    """PTB-XL's relative record path, e.g. ``records100/00000/00001_lr`` (``rate`` "hr": records500)."""
    folder = "records100" if rate == "lr" else "records500"
    return f"{folder}/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}_{rate}"


def read_record(path: str | os.PathLike) -> np.ndarray:
    """Read one WFDB record (path without extension) as float32 (1000, 12) mV in PTB-XL lead order.

    Raises :class:`RecordError` with the reason when the record is missing, corrupt or truncated,
    not at 100 Hz, not 12 leads named as in PTB-XL, not in mV, or holds NaN/inf samples.
    """
    import wfdb

    path = Path(path)
    try:
        signal, fields = wfdb.rdsamp(str(path))
    except FileNotFoundError:
        raise RecordError(f"{path}: record files missing") from None
    except Exception as exc:  # wfdb raises ValueError, IndexError, struct errors... for corrupt files
        raise RecordError(f"{path}: unreadable WFDB record ({type(exc).__name__}: {exc})") from None
    if fields["fs"] != SAMPLING_RATE_HZ:
        raise RecordError(f"{path}: sampling rate {fields['fs']} Hz, expected {SAMPLING_RATE_HZ} Hz (records100)")
    names = [str(n).upper() for n in fields["sig_name"]]
    if len(names) != N_LEADS or names != list(LEAD_NAMES):
        raise RecordError(f"{path}: leads {fields['sig_name']}, expected the 12 PTB-XL leads {list(LEAD_NAMES)}")
    if signal.shape != (N_SAMPLES, N_LEADS):
        raise RecordError(f"{path}: {signal.shape[0]} samples, expected {N_SAMPLES} (10 s at 100 Hz; truncated?)")
    units = {str(u).lower() for u in fields["units"]}
    if units != {"mv"}:
        raise RecordError(f"{path}: units {sorted(units)}, expected mV")
    if not np.isfinite(signal).all():
        raise RecordError(f"{path}: {int((~np.isfinite(signal)).sum())} NaN/inf samples")
    return signal.astype(np.float32)


def _read_or_reason(path: str) -> np.ndarray | str:
    try:
        return read_record(path)
    except RecordError as exc:
        return str(exc)


@dataclass
class LoadReport:
    """What :func:`load_signals` did: counts and the ecg_ids it skipped, by reason."""

    requested: int = 0
    loaded: int = 0
    missing: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    from_cache: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for logs and notebooks."""
        text = (f"{self.loaded} of {self.requested} records loaded "
                f"({'cache' if self.from_cache else 'WFDB'}, {self.seconds:.2f} s)")
        if self.missing:
            text += f"; {len(self.missing)} not on disk (normal for a subset)"
        if self.skipped:
            text += f"; {len(self.skipped)} skipped as unusable (see .skipped)"
        return text


@dataclass
class Signals:
    """Loaded ECGs: ``mv`` float32 (n, 1000, 12) in mV, row i is record ``ecg_ids[i]``."""

    mv: np.ndarray
    ecg_ids: np.ndarray
    report: LoadReport

    def take(self, ecg_ids: Iterable[int]) -> np.ndarray:
        """The signals of ``ecg_ids`` (in that order) that were loaded; unknown ids are left out."""
        position = {int(e): i for i, e in enumerate(self.ecg_ids)}
        rows = [position[int(e)] for e in ecg_ids if int(e) in position]
        return self.mv[rows]


def cache_dir() -> Path:
    """Cache folder: ``$RARE_GAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/rare_gan``, else ``~/.cache/rare_gan``."""
    if os.environ.get("RARE_GAN_CACHE_DIR"):
        return Path(os.environ["RARE_GAN_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rare_gan"


def _cache_key(meta: PTBXL, ecg_ids: Sequence[int]) -> str:
    """Hash of what the decoded array depends on: folder, ids, and each record's file sizes and mtimes."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{meta.root}".encode())
    for ecg_id, name in zip(ecg_ids, meta.database.loc[list(ecg_ids), "filename_lr"]):
        base = meta.root / name
        stats = [os.stat(str(base) + ext) for ext in (".hea", ".dat")]
        digest.update(f"|{ecg_id}:{stats[0].st_size}:{stats[0].st_mtime_ns}:{stats[1].st_size}:{stats[1].st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def load_signals(meta: PTBXL, ecg_ids: Iterable[int] | None = None, workers: int | None = None,
                 use_cache: bool = True, progress: bool = True) -> Signals:
    """Load ECGs (mV, float32) for ``ecg_ids`` (default: every record on disk), in that order.

    Records listed in the metadata but absent on disk are counted in ``report.missing``; unusable
    records (corrupt, wrong rate/leads, NaN) are skipped, counted and logged with their reason.
    Decoding runs in ``workers`` processes (default: all cores); the decoded array is cached as
    ``.npy`` under :func:`cache_dir`, keyed by the folder, the ids and the files' sizes and mtimes,
    so a second call with the same inputs is near-instant (memory-mapped).
    """
    start = time.perf_counter()
    wanted = list(meta.database.index if ecg_ids is None else (int(e) for e in ecg_ids))
    unknown = sorted(set(wanted) - set(meta.database.index))
    if unknown:
        raise DataError(f"ecg_id(s) not in {meta.root / 'ptbxl_database.csv'}: {unknown[:10]}")
    on_disk = meta.database.loc[wanted, "on_disk"].to_numpy()
    present = [e for e, ok in zip(wanted, on_disk) if ok]
    report = LoadReport(requested=len(wanted), missing=[e for e, ok in zip(wanted, on_disk) if not ok])
    key = _cache_key(meta, present)
    folder = cache_dir()
    signals_path, index_path = folder / f"{key}.signals.npy", folder / f"{key}.json"
    if use_cache and index_path.is_file() and signals_path.is_file():
        cached = json.loads(index_path.read_text())
        report.skipped = {int(k): v for k, v in cached["skipped"].items()}
        mv = np.load(signals_path, mmap_mode="r")
        ids = np.asarray(cached["ecg_ids"], dtype=np.int64)
        report.from_cache = True
    else:
        mv, ids, report.skipped = _decode(meta, present, workers, progress)
        if use_cache:
            with atomic.atomic_path(signals_path) as tmp:
                np.save(tmp, mv)
            atomic.write_json(index_path, {"root": str(meta.root), "ecg_ids": ids.tolist(),
                                           "skipped": {str(k): v for k, v in report.skipped.items()}})
    for ecg_id, reason in list(report.skipped.items())[:20]:
        log.warning("skipped ecg_id %s: %s", ecg_id, reason)
    report.loaded = len(ids)
    report.seconds = time.perf_counter() - start
    log.info(report.summary())
    return Signals(mv=mv, ecg_ids=ids, report=report)


def _decode(meta: PTBXL, ecg_ids: list[int], workers: int | None, progress: bool):
    from tqdm.auto import tqdm

    paths = [str(meta.root / name) for name in meta.database.loc[ecg_ids, "filename_lr"]]
    workers = workers or os.cpu_count() or 1
    chunk = max(1, len(paths) // (workers * 8))
    if workers > 1 and len(paths) > 64:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(tqdm(pool.map(_read_or_reason, paths, chunksize=chunk), total=len(paths),
                                desc="Reading WFDB", unit="rec", disable=not progress, mininterval=1.0))
    else:
        results = [_read_or_reason(p) for p in tqdm(paths, desc="Reading WFDB", unit="rec", disable=not progress)]
    good = [(e, r) for e, r in zip(ecg_ids, results) if isinstance(r, np.ndarray)]
    skipped = {e: r for e, r in zip(ecg_ids, results) if isinstance(r, str)}
    mv = np.stack([r for _, r in good]) if good else np.zeros((0, N_SAMPLES, N_LEADS), np.float32)
    return mv, np.asarray([e for e, _ in good], dtype=np.int64), skipped


# ----------------------------------------------------------------------------------------------
# Scaling for a tanh generator
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignalScaler:
    """One global linear scale for all leads: ``scaled = clip(mv / scale_mv, -1, 1)``; ``mv = scaled * scale_mv``.

    A single factor (no per-lead scale, no offset) keeps Einthoven's and Goldberger's linear
    relations between leads intact in the scaled space, which the lead-consistent generator relies on.
    ``scale_mv`` is a high quantile of |amplitude| over the *training* ECGs (:meth:`fit`), so the
    transform is exactly invertible for every sample with |x| ≤ scale_mv; the rare samples beyond
    (``clipped_fraction`` at fit time) are clipped.
    """

    scale_mv: float
    quantile: float = 0.9999
    clipped_fraction: float = 0.0

    @classmethod
    def fit(cls, train_mv: np.ndarray, quantile: float = 0.9999) -> "SignalScaler":
        """Fit on training-fold ECGs (n, T, 12) in mV."""
        magnitude = np.abs(np.asarray(train_mv, dtype=np.float32)).ravel()
        if magnitude.size == 0 or not np.isfinite(magnitude).all():
            raise DataError("cannot fit the scaler: no training signals, or non-finite samples")
        scale = float(np.quantile(magnitude, quantile))
        if scale <= 0:
            raise DataError("cannot fit the scaler: all training samples are zero")
        return cls(scale_mv=scale, quantile=quantile, clipped_fraction=float((magnitude > scale).mean()))

    def transform(self, mv: np.ndarray) -> np.ndarray:
        """mV → [-1, 1] (float32)."""
        return np.clip(np.asarray(mv, dtype=np.float32) / np.float32(self.scale_mv), -1.0, 1.0)

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """[-1, 1] → mV (float32). Derived leads of a lead-consistent generator may exceed ±1; they stay linear."""
        return (np.asarray(scaled, dtype=np.float64) * self.scale_mv).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SignalScaler":
        return cls(**d)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------
def _info(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m rare_gan.data info",
                                     description="Summarise a PTB-XL folder and list its rarest SCP codes.")
    parser.add_argument("--data", help="PTB-XL folder (default: $PTBXL_DIR, else data/ptbxl)")
    parser.add_argument("--rarest", type=int, default=25, help="how many of the rarest codes to list")
    parser.add_argument("--on-disk", action="store_true", help="count only records whose waveforms are present")
    args = parser.parse_args(argv)
    meta = load_metadata(args.data)
    db = meta.database
    print(f"{meta.root}{'  [DEMO dataset, not PTB-XL]' if meta.demo else ''}")
    print(f"records: {len(db)} in metadata, {int(db['on_disk'].sum())} on disk")
    print(db.groupby("split")["on_disk"].agg(["size", "sum"]).rename(columns={"size": "metadata", "sum": "on_disk"}))
    table = meta.prevalence(on_disk=args.on_disk)
    print(f"\nrarest SCP codes ({'on disk' if args.on_disk else 'metadata'}):")
    print(table.head(args.rarest).to_string(float_format=lambda x: f"{x:.3f}"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rare_gan.data {info,download,demo} ...``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"info": _info}
    if not argv or argv[0] not in {"info", "download", "demo"}:
        print("usage: python -m rare_gan.data {info,download,demo} [options]  (--help after a command for more)",
              file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if command == "download":
            from rare_gan import download

            return download.main(rest)
        if command == "demo":
            from rare_gan import demo

            return demo.main(rest)
        return commands[command](rest)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

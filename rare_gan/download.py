"""Download the parts of PTB-XL v1.0.1 that the project uses, verified against PhysioNet's SHA256s.

Run as ``python -m rare_gan.data download [--dest data/ptbxl]`` (or ``python -m rare_gan.download``).
The published ``SHA256SUMS.txt`` is fetched first; then the metadata CSVs, ``LICENSE.txt`` and every
100 Hz record (``records100/**.hea|.dat``) are fetched in parallel, keeping the official layout under
``dest``. ``records500`` is skipped.

Each file is written to ``<file>.part`` and renamed (``os.replace``) only once its SHA256 matches, so
a final name always holds a verified file. A re-run skips verified files and resumes ``.part`` files
with an HTTP ``Range`` request (a server that ignores it answers 200 and the file restarts). A file
whose hash is wrong is deleted and fetched once more before the run fails. Any failure raises
:class:`DownloadError`, whose message names the URL and explains the manual alternative.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Sequence
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urljoin
from urllib.request import Request, urlopen

from tqdm import tqdm

from rare_gan import __version__
from rare_gan.atomic import write_json, write_text

DEFAULT_BASE_URL = "https://physionet.org/files/ptb-xl/1.0.1/"
MANUAL_URL = "https://physionet.org/content/ptb-xl/1.0.1/"
DEFAULT_DEST = "data/ptbxl"
CHECKSUMS_NAME = "SHA256SUMS.txt"
MANIFEST_NAME = ".rare_gan_download.json"
REQUIRED_FILES = ("ptbxl_database.csv", "scp_statements.csv")
OPTIONAL_FILES = ("LICENSE.txt",)
RECORD_DIR = "records100/"
RECORD_SUFFIXES = (".hea", ".dat")
ATTEMPTS = 2  # first try plus one retry
CHUNK_BYTES = 1 << 16
USER_AGENT = f"rare_gan/{__version__} (python-urllib)"

_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-")


class DownloadError(RuntimeError):
    """A file could not be fetched or verified; the message says which URL and what to do."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of the release: ``path`` relative to the base URL, and its published ``sha256``."""

    path: str
    sha256: str


def download_error(url: str, reason: str) -> DownloadError:
    """Build the :class:`DownloadError` for ``url`` with the manual-download instructions."""
    return DownloadError(
        f"Could not download {url}\n"
        f"  reason: {reason}\n"
        f"PTB-XL v1.0.1 can also be downloaded manually from {MANUAL_URL} (ZIP or wget); unpack it "
        "and point the project at the folder that holds ptbxl_database.csv with "
        "PTBXL_DIR=/path/to/ptb-xl or --data DIR. Re-running this command resumes a partial download."
    )


def parse_checksums(text: str) -> dict[str, str]:
    """Parse ``SHA256SUMS.txt`` (``<sha256>  <relative path>`` per line) into ``{path: sha256}``.

    Accepts one or two separating spaces and the ``*`` binary marker. Raises ``ValueError`` for a
    malformed line or a path that could escape the destination folder (absolute or ``..``).
    """
    checksums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.lstrip(" *")
        parts = PurePosixPath(name).parts
        if not _SHA256_RE.fullmatch(digest) or not name or name.startswith("/") or ".." in parts:
            raise ValueError(f"malformed line {number} of {CHECKSUMS_NAME}: {line!r}")
        checksums[name] = digest.lower()
    return checksums


def select_files(checksums: dict[str, str], limit: int | None = None) -> list[RemoteFile]:
    """Pick what the project needs: metadata CSVs, ``LICENSE.txt`` and the ``records100`` files.

    ``limit`` keeps only the first ``limit`` records (sorted by path; each has a ``.hea`` and a
    ``.dat``). Raises ``ValueError`` when a required metadata CSV is not listed.
    """
    missing = [name for name in REQUIRED_FILES if name not in checksums]
    if missing:
        raise ValueError(f"{CHECKSUMS_NAME} does not list {', '.join(missing)}: is this a PTB-XL release?")
    records = sorted(p for p in checksums if p.startswith(RECORD_DIR) and p.endswith(RECORD_SUFFIXES))
    if limit is not None:
        kept = set(sorted({_record_stem(p) for p in records})[:limit])
        records = [p for p in records if _record_stem(p) in kept]
    names = [n for n in REQUIRED_FILES + OPTIONAL_FILES if n in checksums] + records
    return [RemoteFile(name, checksums[name]) for name in names]


def sha256_file(path: str | os.PathLike) -> str:
    """Return the SHA256 of the file at ``path`` as lowercase hex."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def fetch_file(base_url: str, item: RemoteFile, dest: str | os.PathLike, timeout: float = 30.0) -> bool:
    """Make ``dest/item.path`` a verified copy of ``base_url + item.path``.

    Returns False when the file was already present with the right hash, True when it was
    downloaded. ``timeout`` (seconds) applies to connecting and to each read. A partial
    ``.part`` file is resumed; a hash mismatch deletes it and retries once. Raises
    :class:`DownloadError` on failure (a ``.part`` left by a network error is kept for resuming).
    """
    target = Path(dest) / item.path
    if target.is_file():
        if sha256_file(target) == item.sha256:
            return False
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    url = urljoin(_as_base(base_url), quote(item.path))
    reason = ""
    for _ in range(ATTEMPTS):
        try:
            _transfer(url, part, timeout)
        except (OSError, HTTPException) as exc:
            reason = _describe(exc)
            continue
        digest = sha256_file(part)
        if digest == item.sha256:
            os.replace(part, target)
            return True
        part.unlink()
        reason = f"SHA256 mismatch for {item.path}: expected {item.sha256}, got {digest}"
    raise download_error(url, reason)


def download(
    dest: str | os.PathLike = DEFAULT_DEST,
    *,
    base_url: str = DEFAULT_BASE_URL,
    limit: int | None = None,
    workers: int = 8,
    timeout: float = 30.0,
    progress: bool = True,
) -> dict:
    """Download and verify PTB-XL's metadata and 100 Hz records into ``dest``; return the manifest.

    ``workers`` threads fetch files in parallel; ``timeout`` is in seconds per connection/read.
    Stops at the first failed file (already verified files stay, so a re-run resumes) and raises
    :class:`DownloadError`. On success writes the published ``dest/SHA256SUMS.txt`` (for
    ``sha256sum -c --ignore-missing``) and the manifest ``dest/.rare_gan_download.json`` (base_url, file counts, UTC time), and returns it.
    """
    dest = Path(dest)
    base_url = _as_base(base_url)
    sums_url = urljoin(base_url, CHECKSUMS_NAME)
    try:
        sums_text = _read_url(sums_url, timeout).decode("utf-8")
        items = select_files(parse_checksums(sums_text), limit)
    except (ValueError, UnicodeDecodeError) as exc:
        raise download_error(sums_url, str(exc)) from exc
    downloaded = _fetch_all(base_url, items, dest, workers, timeout, progress)
    write_text(dest / CHECKSUMS_NAME, sums_text)
    manifest = {
        "base_url": base_url,
        "files": len(items),
        "downloaded": downloaded,
        "already_present": len(items) - downloaded,
        "limit": limit,
        "completed_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(dest / MANIFEST_NAME, manifest)
    return manifest


def build_parser(prog: str = "python -m rare_gan.data download") -> argparse.ArgumentParser:
    """Return the argument parser of the ``download`` command."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default=DEFAULT_DEST, help=f"target folder (default: {DEFAULT_DEST})")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"release URL (default: {DEFAULT_BASE_URL})")
    parser.add_argument("--limit", type=_positive_int, help="only the first N records (quick try)")
    parser.add_argument("--workers", type=_positive_int, default=8, help="parallel downloads (default: 8)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per connection/read (default: 30)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``download`` command; return the exit code (0 ok, 2 on :class:`DownloadError`)."""
    args = build_parser().parse_args(argv)
    try:
        manifest = download(
            args.dest,
            base_url=args.base_url,
            limit=args.limit,
            workers=args.workers,
            timeout=args.timeout,
            progress=not args.no_progress,
        )
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dest = Path(args.dest).resolve()
    print(
        f"PTB-XL ready in {dest}: {manifest['files']} files verified ({manifest['downloaded']} downloaded, "
        f"{manifest['already_present']} already present). Use it with PTBXL_DIR={dest} or --data {dest}."
    )
    return 0


def _fetch_all(base_url: str, items: list[RemoteFile], dest: Path, workers: int, timeout: float, progress: bool) -> int:
    """Fetch ``items`` with a thread pool; return how many were downloaded (not already present)."""
    downloaded = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ptbxl-download")
    try:
        futures = [pool.submit(fetch_file, base_url, item, dest, timeout) for item in items]
        with tqdm(total=len(items), unit="file", desc="PTB-XL", disable=not progress) as bar:
            for future in as_completed(futures):
                downloaded += future.result()
                bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return downloaded


def _transfer(url: str, part: Path, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` via a Range request, or rewrite it if not honoured."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        if exc.code == 416 and offset:  # nothing after ``offset``: the hash check decides
            exc.close()
            return
        raise
    with response:
        match = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", ""))
        resumed = response.status == 206 and match is not None and int(match.group(1)) == offset
        with open(part, "ab" if resumed else "wb") as fh:
            shutil.copyfileobj(response, fh, CHUNK_BYTES)


def _read_url(url: str, timeout: float) -> bytes:
    """Return the body of ``url``; raise :class:`DownloadError` on any network or HTTP error."""
    try:
        with urlopen(Request(url, headers={"User-Agent": USER_AGENT}), timeout=timeout) as response:
            return response.read()
    except (OSError, HTTPException) as exc:
        raise download_error(url, _describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    """One-line reason for a network/HTTP exception."""
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, URLError):
        return f"{exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _as_base(url: str) -> str:
    """``url`` with exactly one trailing slash, so relative paths join below it."""
    return url.rstrip("/") + "/"


def _record_stem(path: str) -> str:
    """``records100/00000/00001_lr.hea`` -> ``records100/00000/00001_lr``."""
    return path.rsplit(".", 1)[0]


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())

"""Atomic file and folder writes: a reader sees the old content or the new, never half of one.

Every file the pipeline writes goes through :func:`atomic_path` (write to a temporary sibling,
fsync, then ``os.replace``). Folders are marked complete with :func:`mark_complete` only after all
their files exist, so an interrupted run never leaves an output folder that looks finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

COMPLETE_MARKER = "_COMPLETE"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    ``suffix`` defaults to the target's suffix, so libraries that infer the format from the
    file name (``np.save``, ``savefig``, Keras ``.keras``) keep working. On any exception the
    temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def json_text(obj: Any) -> str:
    """``obj`` as indented, key-sorted JSON (values JSON does not know are written with ``str``)."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically and return the path."""
    return write_text(path, json_text(obj))


def mark_complete(folder: str | os.PathLike, info: dict[str, Any] | None = None) -> Path:
    """Write the completion marker of ``folder`` (last step of producing it)."""
    return write_json(Path(folder) / COMPLETE_MARKER, info or {})


def is_complete(folder: str | os.PathLike) -> bool:
    """True when ``folder`` was finished by :func:`mark_complete` and not reopened since."""
    return (Path(folder) / COMPLETE_MARKER).is_file()


def mark_incomplete(folder: str | os.PathLike) -> None:
    """Remove the completion marker before ``folder`` is rewritten."""
    (Path(folder) / COMPLETE_MARKER).unlink(missing_ok=True)

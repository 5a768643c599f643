"""rare_gan.download against a local HTTP mirror (with and without Range support)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rare_gan.download import MANIFEST_NAME, DownloadError, download, main, parse_checksums, select_files

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_PTBXL = Path(os.environ.get("PTBXL_DIR") or Path(__file__).resolve().parents[2] / "shared" / "ptbxl")
METADATA = ("ptbxl_database.csv", "scp_statements.csv", "LICENSE.txt")
RECORDS = [f"records100/00000/{i:05d}_lr" for i in range(1, 6)]
EXTRA_HR = "records500/00000/00001_hr.dat"  # listed and served, but must not be downloaded


class MirrorHandler(SimpleHTTPRequestHandler):
    """Serves the mirror folder; honours ``Range: bytes=N-`` with 206 while ``server.ranges`` is True."""

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if self.server.ranges and match:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # keep pytest output quiet
        pass


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build_mirror(root: Path) -> dict[str, str]:
    """Fill ``root`` with metadata, 5 records and one records500 file; return ``{path: sha256}`` wanted."""
    names = list(METADATA) + [r + s for r in RECORDS for s in (".hea", ".dat")]
    for name in names + [EXTRA_HR]:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        source = SHARED_PTBXL / name
        if source.is_file():
            shutil.copyfile(source, target)
        else:  # no PTB-XL subset here: small synthetic stand-ins in the same layout
            target.write_bytes(hashlib.sha512(name.encode()).digest() * 300)
    wanted = {name: _sha256(root / name) for name in names}
    lines = [f"{digest}  {name}" for name, digest in wanted.items()] + [f"{_sha256(root / EXTRA_HR)}  {EXTRA_HR}"]
    (root / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    return wanted


@pytest.fixture
def mirror(tmp_path):
    """A local PTB-XL mirror over HTTP: yields (base_url, server, mirror_root, wanted)."""
    root = tmp_path / "mirror"
    wanted = _build_mirror(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(MirrorHandler, directory=str(root)))
    server.ranges, server.requests = True, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", server, root, wanted
    server.shutdown()
    server.server_close()
    thread.join()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _assert_verified(dest: Path, wanted: dict[str, str]) -> None:
    for name, digest in wanted.items():
        assert _sha256(dest / name) == digest, name
    assert not list(dest.rglob("*.part"))
    assert not (dest / "records500").exists()


def test_parse_checksums_formats_and_unsafe_paths():
    digest = "a" * 64
    assert parse_checksums(f"{digest}  x.csv\n\n{digest} y/z.dat\n{digest} *w.hea\n") == {
        "x.csv": digest, "y/z.dat": digest, "w.hea": digest}
    for bad in (f"{digest}  ../evil", f"{digest}  /etc/passwd", "nothex  x.csv", digest):
        with pytest.raises(ValueError):
            parse_checksums(bad)


def test_select_files_limit_and_records500():
    sums = {name: "0" * 64 for name in ("ptbxl_database.csv", "scp_statements.csv", EXTRA_HR)}
    sums.update({r + s: "0" * 64 for r in RECORDS for s in (".dat", ".hea")})
    paths = [f.path for f in select_files(sums, limit=2)]
    assert paths == ["ptbxl_database.csv", "scp_statements.csv"] + [r + s for r in RECORDS[:2] for s in (".dat", ".hea")]
    with pytest.raises(ValueError, match="ptbxl_database.csv"):
        select_files({"scp_statements.csv": "0" * 64})


def test_full_download_then_rerun_skips(mirror, tmp_path):
    base_url, server, _, wanted = mirror
    dest = tmp_path / "dest"
    manifest = download(dest, base_url=base_url, progress=False)
    _assert_verified(dest, wanted)
    assert manifest["files"] == manifest["downloaded"] == len(wanted)
    assert json.loads((dest / MANIFEST_NAME).read_text())["base_url"] == base_url
    assert (dest / "SHA256SUMS.txt").is_file()
    assert not any(path.endswith(EXTRA_HR) for path, _ in server.requests)

    server.requests.clear()
    again = download(dest, base_url=base_url, progress=False)
    assert again["downloaded"] == 0 and again["already_present"] == len(wanted)
    assert [path for path, _ in server.requests] == ["/SHA256SUMS.txt"]


def test_limit_downloads_first_records_only(mirror, tmp_path):
    base_url, _, _, _ = mirror
    dest = tmp_path / "dest"
    assert download(dest, base_url=base_url, limit=2, progress=False)["files"] == len(METADATA) + 4
    assert sorted(p.name for p in (dest / "records100" / "00000").iterdir()) == [
        "00001_lr.dat", "00001_lr.hea", "00002_lr.dat", "00002_lr.hea"]


def test_partial_file_is_resumed_with_range(mirror, tmp_path):
    base_url, server, root, wanted = mirror
    name = RECORDS[0] + ".dat"
    data = (root / name).read_bytes()
    part = tmp_path / "dest" / (name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[: len(data) // 2])
    download(tmp_path / "dest", base_url=base_url, progress=False)
    assert ("/" + name, f"bytes={len(data) // 2}-") in server.requests
    _assert_verified(tmp_path / "dest", wanted)


def test_server_without_range_support_restarts_file(mirror, tmp_path):
    base_url, server, _, wanted = mirror
    server.ranges = False
    name = RECORDS[1] + ".hea"
    part = tmp_path / "dest" / (name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes that a 200 answer must replace")
    download(tmp_path / "dest", base_url=base_url, progress=False)
    assert any(path == "/" + name and rng for path, rng in server.requests)
    _assert_verified(tmp_path / "dest", wanted)


def test_bad_partial_is_discarded_and_retried(mirror, tmp_path):
    base_url, server, _, wanted = mirror
    name = RECORDS[2] + ".dat"
    part = tmp_path / "dest" / (name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage")
    download(tmp_path / "dest", base_url=base_url, progress=False)
    assert [rng for path, rng in server.requests if path == "/" + name] == ["bytes=7-", None]
    _assert_verified(tmp_path / "dest", wanted)


def test_corrupted_server_file_raises_and_leaves_no_file(mirror, tmp_path):
    base_url, server, root, _ = mirror
    name = RECORDS[3] + ".dat"
    with open(root / name, "r+b") as fh:
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(DownloadError, match=re.escape(name)) as info:
        download(tmp_path / "dest", base_url=base_url, progress=False)
    assert "SHA256 mismatch" in str(info.value)
    assert sum(path == "/" + name for path, _ in server.requests) == 2  # first try + one retry
    assert not (tmp_path / "dest" / name).exists()
    assert not (tmp_path / "dest" / (name + ".part")).exists()
    assert not (tmp_path / "dest" / MANIFEST_NAME).exists()


def test_unreachable_server_fails_fast_with_help(tmp_path, capsys):
    url = _closed_port_url()
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(tmp_path / "dest", base_url=url, progress=False, timeout=5)
    assert time.monotonic() - start < 5
    message = str(info.value)
    for needle in (url + "SHA256SUMS.txt", "https://physionet.org/content/ptb-xl/1.0.1/", "PTBXL_DIR=", "--data"):
        assert needle in message

    assert main(["--dest", str(tmp_path / "dest"), "--base-url", url, "--no-progress"]) == 2
    assert "PTBXL_DIR=" in capsys.readouterr().err


def test_cli_module_exits_2_without_traceback(tmp_path):
    url = _closed_port_url()
    result = subprocess.run(
        [sys.executable, "-m", "rare_gan.download", "--dest", str(tmp_path / "dest"), "--base-url", url],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,  # importing TensorFlow took > 30 s under load
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert url in result.stderr and "https://physionet.org/content/ptb-xl/1.0.1/" in result.stderr

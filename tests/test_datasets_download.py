"""download(): Range resume after an interrupted transfer, checksum, atomic rename, errors (local HTTP server)."""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fer.datasets.download import DownloadError, download

PAYLOAD = bytes(range(256)) * 1024  # 256 KiB


class _Server:
    def __init__(self):
        self.requests: list[str | None] = []  # Range header of every GET
        self.cut_after: int | None = None  # close the connection after this many body bytes, once
        self.ignore_range = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != "/data.bin":
                    self.send_error(404)
                    return
                header = self.headers.get("Range")
                server.requests.append(header)
                start = 0
                if header and not server.ignore_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", header).group(1))
                    if start >= len(PAYLOAD):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    body, server.cut_after = body[: server.cut_after], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_interrupted_then_resumed(server, tmp_path):
    dest = tmp_path / "out" / "data.bin"
    server.cut_after = 100_000
    with pytest.raises(DownloadError, match=r"100000 bytes kept in .*data.bin.part, run again to resume"):
        download(f"{server.url}/data.bin", dest, sha256=SHA, retries=0, progress=None)
    assert not dest.exists() and (tmp_path / "out/data.bin.part").stat().st_size == 100_000
    assert download(f"{server.url}/data.bin", dest, sha256=SHA, progress=None) == dest
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "out/data.bin.part").exists()
    assert server.requests == [None, "bytes=100000-"]
    download(f"{server.url}/data.bin", dest, sha256=SHA, progress=None)  # complete file: no request
    assert len(server.requests) == 2


def test_retry_resumes_within_one_call(server, tmp_path):
    server.cut_after = 50_000
    seen = []
    download(
        f"{server.url}/data.bin", tmp_path / "d.bin", retries=2, progress=lambda d, t: seen.append((d, t))
    )
    assert (tmp_path / "d.bin").read_bytes() == PAYLOAD
    assert server.requests == [None, "bytes=50000-"] and seen[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_server_ignoring_range_restarts(server, tmp_path):
    (tmp_path / "d.bin.part").write_bytes(b"garbage" * 10)
    server.ignore_range = True
    download(f"{server.url}/data.bin", tmp_path / "d.bin", sha256=SHA, progress=None)
    assert (tmp_path / "d.bin").read_bytes() == PAYLOAD


def test_complete_part_and_bad_checksum(server, tmp_path):
    (tmp_path / "d.bin.part").write_bytes(PAYLOAD)
    download(f"{server.url}/data.bin", tmp_path / "d.bin", sha256=SHA, progress=None)  # 416: already whole
    assert (tmp_path / "d.bin").read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match=r"sha256 [0-9a-f]{64} does not match the expected 0000"):
        download(f"{server.url}/data.bin", tmp_path / "e.bin", sha256="0" * 64, progress=None)
    assert not (tmp_path / "e.bin").exists() and not (tmp_path / "e.bin.part").exists()
    with pytest.raises(DownloadError, match=r"exists but its sha256 is not 0000"):
        download(f"{server.url}/data.bin", tmp_path / "d.bin", sha256="0" * 64, progress=None)


def test_http_errors(server, tmp_path):
    with pytest.raises(DownloadError, match=r"missing.bin: HTTP 404"):
        download(f"{server.url}/missing.bin", tmp_path / "m.bin", progress=None)
    port = server.httpd.server_address[1]
    server.close()
    with pytest.raises(DownloadError, match=r"download failed after 1 attempt"):
        download(f"http://127.0.0.1:{port}/data.bin", tmp_path / "n.bin", retries=0, timeout=2, progress=None)

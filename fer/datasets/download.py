"""Resumable downloads for dataset archives the owners serve over HTTP(S).

``download(url, dest)`` writes ``<dest>.part`` while it streams, resumes a partial file with an HTTP Range
request (RFC 9110 section 14), checks the size the server announced and, if given, the SHA-256, and only then
renames the file to ``dest``: ``dest`` either does not exist or is complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A download failed; the message names the URL, the file and what to do."""


class _Refused(DownloadError):
    """The server refused the request (HTTP error status): retrying will not help."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _open(url: str, start: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "fer-download/1"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=timeout)


def _total_from(response, start: int) -> int | None:
    """Full size of the file from Content-Range (206) or Content-Length (200), None if unknown."""
    content_range = response.headers.get("Content-Range")
    if content_range:
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", content_range.strip())
        if not m or int(m.group(1)) != start:
            raise DownloadError(f"{response.url}: server answered the range {start}- with {content_range!r}")
        return None if m.group(3) == "*" else int(m.group(3))
    length = response.headers.get("Content-Length")
    return int(length) + start if length is not None else None


def _fetch_once(
    url: str, part: Path, timeout: float, progress: Callable[[int, int | None], None] | None
) -> None:
    start = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, start, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # nothing left to send: the partial file is already whole
            return
        raise _Refused(f"{url}: HTTP {err.code} {err.reason}; check the URL and your access to it") from None
    with response:
        if start and response.status != 206:
            start = 0  # the server ignored the Range header: start over
        total = _total_from(response, start)
        done = start
        with open(part, "ab" if start else "wb") as f:
            while block := response.read(CHUNK):
                f.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
    if total is not None and done != total:
        raise DownloadError(f"{url}: connection closed after {done} of {total} bytes")


def _report(done: int, total: int | None) -> None:
    size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
    print(f"\r  {size}", end="", file=sys.stderr, flush=True)


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = _report,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify ``sha256`` if given, rename atomically.

    An existing ``dest`` with the right checksum is kept. Each failed attempt keeps the partial file and is
    retried with a Range request up to ``retries`` times; the last failure raises :class:`DownloadError`
    (run again to resume).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if dest.is_file():
        if sha256 is None or _sha256(dest) == sha256.lower():
            return dest
        raise DownloadError(f"{dest} exists but its sha256 is not {sha256}; delete it to download it again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(retries + 1):
        try:
            _fetch_once(url, part, timeout, progress)
            last = None
            break
        except _Refused:
            raise
        except (DownloadError, urllib.error.URLError, http.client.HTTPException, OSError) as err:
            last = err
    if progress is _report:
        print(file=sys.stderr)
    if last is not None:
        kept = part.stat().st_size if part.exists() else 0
        reason = last.reason if isinstance(last, urllib.error.URLError) else last
        raise DownloadError(
            f"{url}: download failed after {retries + 1} attempt(s) ({reason}); {kept} bytes kept in {part}, "
            f"run again to resume"
        ) from None
    if sha256 is not None:
        got = _sha256(part)
        if got != sha256.lower():
            part.unlink()
            raise DownloadError(
                f"{url}: sha256 {got} does not match the expected {sha256}; the partial file was removed, the "
                f"source may have changed or be corrupt"
            )
    os.replace(part, dest)
    return dest

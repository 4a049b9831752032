"""Sending lesson file bytes: strong ETag, immutable caching, Range/206/416,
If-None-Match/304, HEAD, and zero-copy transfer.

A blob's name is its sha256, so the ETag is the hash itself and the bytes behind
a URL never change (``immutable``). Whole files and ranges are handed to the WSGI
server's ``wsgi.file_wrapper``; under gunicorn that is ``os.sendfile`` from the
file's current offset for exactly Content-Length bytes, so a range is sent by
seeking first. Other servers (the test client) get a bounded chunked reader.
Nothing ever reads a whole file into memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from flask import Response, request

from edge.errors import problem

_YEAR = 365 * 24 * 3600
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024

# Opened directly, a lesson file must not run script in the hub's origin.
CONTENT_CSP = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single satisfiable range, None when the header
    should be ignored (multi-range: we send the whole file, which RFC 9110 allows).
    Raises ValueError when malformed or unsatisfiable (-> 416)."""
    header = header.strip()
    if "," in header:
        return None
    m = _RANGE.match(header)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        raise ValueError("malformed Range header")
    first, last = m.group(1), m.group(2)
    if len(first) > 18 or len(last) > 18:
        raise ValueError("Range header value too large")
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if end < start or start >= size:
        raise ValueError("range not satisfiable")
    return start, min(end, size - 1)


def _bounded(fh: IO[bytes], length: int) -> Iterator[bytes]:
    try:
        left = length
        while left > 0:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        fh.close()


def send_blob(path: Path, sha256: str, media_type: str, extra_headers: dict[str, str] | None = None) -> Response:
    """The response for one stored blob, honouring conditional and Range requests."""
    etag = f'"{sha256}"'
    try:
        fh = open(path, "rb")  # handed to the WSGI server, which closes it
    except FileNotFoundError:
        problem(404, "content-missing", "this file is listed by a lesson but missing from the store; re-import the lesson")
    size = os.fstat(fh.fileno()).st_size
    headers = {
        "ETag": etag,
        "Cache-Control": f"private, max-age={_YEAR}, immutable",
        "Accept-Ranges": "bytes",
        "Content-Security-Policy": CONTENT_CSP,
        "X-Content-Type-Options": "nosniff",
        **(extra_headers or {}),
    }
    inm = request.headers.get("If-None-Match")
    if inm and (inm.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in inm.split(",")]):
        fh.close()
        return Response(status=304, headers=headers)
    status, start, length = 200, 0, size
    rng = request.headers.get("Range")
    if rng and _if_range_ok(etag):
        try:
            parsed = parse_range(rng, size)
        except ValueError as exc:
            fh.close()
            problem(416, "range-not-satisfiable", f"{exc}; the file has {size} bytes", headers={"Content-Range": f"bytes */{size}", **headers})
        if parsed is not None:
            start, end = parsed
            status, length = 206, end - start + 1
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        fh.close()
        resp = Response(status=status, headers=headers, mimetype=media_type)
        resp.headers["Content-Length"] = str(length)
        return resp
    fh.seek(start)
    wrapper = request.environ.get("wsgi.file_wrapper")
    if wrapper is not None and request.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
        # gunicorn sends exactly Content-Length bytes from the current offset with sendfile(2).
        body = wrapper(fh, CHUNK)
    else:
        body = _bounded(fh, length)
    resp = Response(body, status=status, headers=headers, mimetype=media_type, direct_passthrough=True)
    resp.headers["Content-Length"] = str(length)
    return resp


def _if_range_ok(etag: str) -> bool:
    if_range = request.headers.get("If-Range")
    return if_range is None or if_range.strip() == etag

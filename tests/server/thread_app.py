"""A WSGI app that says which process and thread answered (for the worker's tests)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(size) if size and environ["PATH_INFO"] != "/ignore-body" else b""
    text = f"{os.getpid()} {threading.get_ident()} {len(body)}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
    return [text]

"""The hub's own web UI (landing, student tablet, teacher, admin), served with all assets local.

Pages are small HTML shells in ``templates/``; everything they run or style is a
file under ``static/`` (the hub's CSP allows no inline script or style, and a
classroom is offline, so nothing may come from a CDN).

Static files are served under ``/static/<build>/...`` where ``<build>`` is a hash
of the whole static tree. Because the version sits in the *path*, relative ES
module imports (``import ... from "./api.js"``) and ``import.meta.url``-relative
fetches of the message catalogs inherit it, so every asset can be cached for a
year and a new release is picked up by the next page load (pages are no-cache).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from apiflask import APIBlueprint
from flask import Response, abort, send_from_directory

bp = APIBlueprint("web", __name__, enable_openapi=False)

_HERE = Path(__file__).resolve().parent
STATIC_DIR = _HERE / "static"
TEMPLATE_DIR = _HERE / "templates"

#: Pages by URL path -> template file. One place for the page routes.
PAGES = {
    "/": "index.html",
    "/student": "student.html",
    "/teacher": "teacher.html",
    "/admin": "admin.html",
    "/carts": "carts.html",
}

# Explicit types: the system mimetypes database differs between distributions and
# browsers refuse module scripts served with a non-JavaScript type under nosniff.
_MIMETYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
    ".woff2": "font/woff2",
}

_YEAR = 365 * 24 * 3600
_lock = threading.Lock()
_build: str | None = None
_rendered: dict[str, str] = {}


def static_build() -> str:
    """A short hash of every file under ``static/`` (names and contents), computed once per process."""
    global _build
    with _lock:
        if _build is None:
            digest = hashlib.sha256()
            for path in sorted(p for p in STATIC_DIR.rglob("*") if p.is_file()):
                digest.update(path.relative_to(STATIC_DIR).as_posix().encode())
                digest.update(b"\0")
                digest.update(path.read_bytes())
            _build = digest.hexdigest()[:12]
        return _build


def static_prefix() -> str:
    return f"/static/{static_build()}"


def _render(template: str) -> str:
    """The template with ``{{static}}`` replaced by the versioned static prefix (cached)."""
    with _lock:
        cached = _rendered.get(template)
    if cached is None:
        text = (TEMPLATE_DIR / template).read_text(encoding="utf-8")
        cached = text.replace("{{static}}", static_prefix())
        with _lock:
            _rendered[template] = cached
    return cached


def _page(template: str, mimetype: str = "text/html") -> Response:
    resp = Response(_render(template), mimetype=mimetype)
    resp.charset = "utf-8"
    # Pages are tiny and name the current asset build: always revalidate them.
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def _register_pages() -> None:
    for path, template in PAGES.items():
        endpoint = template.removesuffix(".html")

        def view(template: str = template) -> Response:
            return _page(template)

        bp.add_url_rule(path, endpoint=endpoint, view_func=view, methods=["GET"])


_register_pages()


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    return _page("manifest.webmanifest", mimetype="application/manifest+json")


@bp.get("/favicon.ico")
def favicon() -> Response:
    # Browsers ask for /favicon.ico on their own; answer with the SVG icon instead of a 404.
    resp = send_from_directory(STATIC_DIR / "icons", "icon.svg", mimetype="image/svg+xml", max_age=86400)
    return resp


@bp.get("/sw.js")
def service_worker() -> Response:
    # Served from the root so its scope covers /student; revalidated on every
    # visit so a new release's worker takes over at once.
    resp = send_from_directory(STATIC_DIR / "js", "sw.js", mimetype="text/javascript", conditional=True)
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["Service-Worker-Allowed"] = "/"
    return resp


@bp.get("/static/<string:build>/<path:filename>")
def static_file(build: str, filename: str) -> Response:
    suffix = Path(filename).suffix.lower()
    if suffix not in _MIMETYPES:
        abort(404)
    resp = send_from_directory(STATIC_DIR, filename, mimetype=_MIMETYPES[suffix], conditional=True)
    if build == static_build():
        resp.headers["Cache-Control"] = f"public, max-age={_YEAR}, immutable"
    else:
        # A page from an older release asking for its assets gets today's files, but
        # must not cache them under the old build's URL.
        resp.headers["Cache-Control"] = "no-cache"
    return resp

"""How the hub serves its web UI (no browser needed): types, caching, CSP-safe
pages, complete message catalogs, and the files the package ships."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

import edge.web as web

STATIC = Path(web.__file__).parent / "static"
TEMPLATES = Path(web.__file__).parent / "templates"
KEY_PREFIXES = (
    "app", "lang", "common", "landing", "student", "teacher", "admin", "pair", "pick", "pin",
    "home", "login", "class", "live", "code", "devices", "import", "role", "error", "lessons",
)
_PREFIX_ALT = "|".join(KEY_PREFIXES)
KEY_RE = re.compile(rf"""["']((?:{_PREFIX_ALT})\.[A-Za-z0-9.-]+)["']""")


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()


@pytest.mark.parametrize("path", list(web.PAGES))
def test_pages_are_html_with_csp_and_revalidated(hub, path):
    status, headers, body = _get(hub.url + path)
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in headers["content-security-policy"]
    html = body.decode()
    assert '<html lang="zh-CN"' in html
    assert f"/static/{web.static_build()}/css/hub.css" in html


def test_versioned_assets_are_cached_for_a_year_with_their_real_type(hub):
    build = web.static_build()
    expected = {
        "js/student.js": "text/javascript",
        "css/hub.css": "text/css",
        "i18n/zh-CN.json": "application/json",
        "icons/icon.svg": "image/svg+xml",
    }
    for name, ctype in expected.items():
        status, headers, _ = _get(f"{hub.url}/static/{build}/{name}")
        assert status == 200
        assert headers["content-type"].split(";")[0] == ctype, name
        assert headers["cache-control"] == "public, max-age=31536000, immutable", name
    # An old build's URL still works, but must not be cached as if it were that build.
    status, headers, _ = _get(f"{hub.url}/static/0000oldbuild/css/hub.css")
    assert status == 200 and headers["cache-control"] == "no-cache"


def test_manifest_names_the_app_and_its_icons(hub):
    status, headers, body = _get(hub.url + "/manifest.webmanifest")
    assert status == 200
    assert headers["content-type"].startswith("application/manifest+json")
    manifest = json.loads(body)
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        assert _get(hub.url + icon["src"])[0] == 200


def test_static_paths_cannot_escape_or_serve_unknown_types(hub):
    build = web.static_build()
    for path in (f"/static/{build}/../__init__.py", f"/static/{build}/js/../../__init__.py", f"/static/{build}/nothing.py"):
        try:
            status = _get(hub.url + path)[0]
        except urllib.error.HTTPError as err:
            status = err.code
        assert status == 404, path


def test_templates_have_no_inline_script_or_style():
    for page in TEMPLATES.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page.name
        assert "<style" not in html and " style=" not in html, page.name
        assert not re.search(r"\son[a-z]+=", html), f"inline event handler in {page.name}"
        assert "http://" not in html and "https://" not in html, f"external URL in {page.name}"


def test_catalogs_have_the_same_keys_and_every_used_key():
    zh = json.loads((STATIC / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))
    en = json.loads((STATIC / "i18n" / "en.json").read_text(encoding="utf-8"))
    assert zh.keys() == en.keys()
    used: set[str] = set()
    for page in TEMPLATES.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        used |= set(re.findall(r'data-i18n="([^"]+)"', html))
        for attr in re.findall(r'data-i18n-attr="([^"]+)"', html):
            used |= {pair.split(":")[1] for pair in attr.split(";")}
        used |= set(re.findall(r'data-title-key="([^"]+)"', html))
    for script in (STATIC / "js").glob("*.js"):
        used |= set(KEY_RE.findall(script.read_text(encoding="utf-8")))
    missing = sorted(k for k in used if k not in zh)
    assert not missing, f"keys used but not in the catalogs: {missing}"
    # Placeholders must match, or a translation would show a raw {name}.
    for key in zh:
        assert set(re.findall(r"\{(\w+)\}", zh[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key


def test_package_data_patterns_cover_every_web_file():
    """setup.py ships web/static/* and web/static/**/*: no file may sit deeper than those reach."""
    import fnmatch

    root = Path(web.__file__).parent.parent
    patterns = ["web/static/*", "web/static/**/*", "web/templates/*"]
    for path in [*STATIC.rglob("*"), *TEMPLATES.rglob("*")]:
        if path.is_file():
            rel = path.relative_to(root).as_posix()
            assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel

"""``classroom-hub lesson``: build, sign, import and list lesson packages."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge import signing


@click.group("lesson")
def lesson_group() -> None:
    """Lesson packages: build and sign (district side), import and list (on the hub)."""


@lesson_group.command("keygen")
@click.option("--private-out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Write the private key here (mode 0600).")
@click.option("--public-out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Write the public key here.")
def keygen(private_out: Path, public_out: Path) -> None:
    """A new district signing key pair (base64 Ed25519)."""
    import os

    private, public = signing.generate_key()
    fd = os.open(private_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(private + "\n")
    public_out.write_text(public + "\n")
    click.echo(f"public key: {public}")


def _key(path: Path | None) -> str | None:
    return signing.read_key_file(path) if path else None


@lesson_group.command("build")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--out", "-o", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Package file to write (.zip).")
@click.option("--key", "key_file", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="District private key file: sign the package.")
def build(folder: Path, out: Path, key_file: Path | None) -> None:
    """Build a lesson package from FOLDER (lesson.toml + files); signed with --key."""
    from edge.lessons.build import build_package
    from edge.lessons.manifest import ManifestError

    try:
        manifest = build_package(folder, out, _key(key_file))
    except (ManifestError, signing.SignatureError) as exc:
        raise click.ClickException(str(exc)) from None
    signed = "signed" if key_file else "NOT signed"
    click.echo(f"{out}: {manifest.id} v{manifest.version}, {len(manifest.pages)} pages, {len(manifest.files)} files, {signed}")


@lesson_group.command("sign")
@click.argument("package", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--key", "key_file", type=click.Path(path_type=Path, dir_okay=False, exists=True), required=True, help="District private key file.")
def sign(package: Path, key_file: Path) -> None:
    """Sign (or re-sign) PACKAGE's manifest in place."""
    from edge.lessons.build import sign_package
    from edge.lessons.manifest import ManifestError

    try:
        sign_package(package, signing.read_key_file(key_file))
    except (ManifestError, signing.SignatureError, KeyError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{package}: signed")


@lesson_group.command("import")
@click.argument("source")
@click.option("--sha256", "expected_sha", help="Expected sha256 of the package file (from the district's notice).")
@click.option("--retries", default=5, show_default=True, help="Download attempts (URL sources).")
@click.pass_obj
def import_(obj: object, source: str, expected_sha: str | None, retries: int) -> None:
    """Install a lesson package from a file, a USB path or an http(s) URL (resumable)."""
    from edge.cli import _db
    from edge.lessons.download import DownloadError, download
    from edge.lessons.importer import ImportRefused, import_package

    config = obj.config()  # type: ignore[attr-defined]
    db = _db(config)
    path = Path(source)
    try:
        if source.startswith(("http://", "https://")):
            with click.progressbar(length=0, label="downloading") as bar:
                def total(n: int) -> None:
                    bar.length = n

                path = download(config, source, expected_sha256=expected_sha, retries=retries, progress=bar.update, on_total=total)
        with click.progressbar(length=1, label="verifying and installing") as bar:
            def set_total(n: int) -> None:
                bar.length = max(n, 1)

            result = import_package(config, db, path, progress=bar.update, on_total=set_total)
    except (ImportRefused, DownloadError) as exc:
        raise click.ClickException(f"refused, nothing was installed: {exc}") from None
    if result.already_installed:
        click.echo(f"{result.lesson_id} v{result.version} is already installed (lesson {result.lesson})")
    else:
        click.echo(f"installed {result.lesson_id} v{result.version} as lesson {result.lesson}: {result.files} files, {result.new_blobs} new in the store")


@lesson_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_(obj: object, as_json: bool) -> None:
    """Installed lessons."""
    from edge.cli import _db
    from edge.lessons.service import list_lessons

    rows = list_lessons(_db(obj.config()))  # type: ignore[attr-defined]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for r in rows:
        size = f"{r['pages']} pages, {r['total_bytes'] // 1024} KiB"
        click.echo(f"{r['id']:>4}  {r['lesson_id']} v{r['version']}  {r['subject']} {r['grade']}  {r['title']}  ({size})")

"""`promptline keys generate|list`: publisher signing keys."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click

from promptline.loaders import SignatureError, generate_key, key_id, parse_public_key

from ._common import console, fail

KEYS_DIR_ENV = "PROMPTLINE_KEYS_DIR"
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def default_keys_dir() -> Path:
    env = os.environ.get(KEYS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs
    return Path(platformdirs.user_config_dir("promptline")) / "keys"


def local_keys(keys_dir: Path) -> list[tuple[str, Path, str]]:
    """(name, private key path, public key) of each key pair in ``keys_dir``."""
    out = []
    if not keys_dir.is_dir():
        return out
    for pub in sorted(keys_dir.glob("*.pem.pub")):
        try:
            public = pub.read_text(encoding="ascii").strip()
            parse_public_key(public)
        except (OSError, UnicodeDecodeError, SignatureError):
            continue
        out.append((pub.name.removesuffix(".pem.pub"), pub.with_name(pub.name.removesuffix(".pub")), public))
    return out


def resolve_key(key: str | None, keys_dir: Path | None = None) -> Path:
    """A private key path from ``--key`` (a path or a key name), else the only local key."""
    keys_dir = keys_dir or default_keys_dir()
    if key:
        path = Path(key).expanduser()
        if path.exists() or os.sep in key or key.endswith(".pem"):
            return path
        return keys_dir / f"{key}.pem"
    keys = local_keys(keys_dir)
    if len(keys) == 1:
        return keys[0][1]
    if not keys:
        fail(f"no signing key in `{keys_dir}` — create one with `promptline keys generate`")
    fail(f"{len(keys)} keys in `{keys_dir}` — choose one with `--key NAME`")
    raise AssertionError  # unreachable


_dir_option = click.option("--dir", "keys_dir", type=click.Path(file_okay=False, path_type=Path),
                           help=f"key directory (default: ${KEYS_DIR_ENV}, else keys/ in the user config dir)")


@click.group("keys")
def keys_group() -> None:
    """Publisher keys for signing plugins (ed25519).

    \b
    Examples:
      promptline keys generate --name acme
      promptline plugin sign ./my-plugin --key acme
      promptline keys list
    Put the public key (`ed25519:...`) in the org policy's `trusted_keys` to trust it.
    """


@keys_group.command("generate")
@click.option("--name", default="default", show_default=True, help="key name (file NAME.pem)")
@_dir_option
def generate_cmd(name: str, keys_dir: Path | None) -> None:
    """Create a key pair: NAME.pem (private, mode 0600) and NAME.pem.pub."""
    if not KEY_NAME.match(name):
        fail(f"key name `{name}` must be letters, digits and `_.-` — choose another --name")
    keys_dir = keys_dir or default_keys_dir()
    path = keys_dir / f"{name}.pem"
    try:
        public = generate_key(path)
    except SignatureError as exc:
        fail(str(exc))
    click.echo(f"private key: {path} (keep it secret; mode 0600)")
    click.echo(f"public key:  {public}")
    click.echo(f"key id:      {key_id(parse_public_key(public))}")
    click.echo("to trust it, add the public key to `trusted_keys` in the org policy")


@keys_group.command("list")
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def list_cmd(keys_dir: Path | None, as_json: bool) -> None:
    """List local key pairs and the keys the policy trusts."""
    from .plugin_cmd import policy_settings
    keys_dir = keys_dir or default_keys_dir()
    settings, _error = policy_settings()
    trusted = {key_id(parse_public_key(k)): k for k in (settings.trusted_keys if settings else ())}
    rows = []
    for name, path, public in local_keys(keys_dir):
        kid = key_id(parse_public_key(public))
        rows.append({"name": name, "key_id": kid, "public_key": public, "private_key": str(path),
                     "trusted": kid in trusted})
    for kid, public in trusted.items():
        if not any(r["key_id"] == kid for r in rows):
            rows.append({"name": "", "key_id": kid, "public_key": public, "private_key": None, "trusted": True})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no keys in {keys_dir} and no trusted keys in the policy — "
                   "create one with `promptline keys generate`")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"keys ({keys_dir})", title_justify="left")
    for col in ("name", "key id", "trusted", "public key"):
        table.add_column(col, overflow="fold", no_wrap=col != "public key")
    for r in rows:
        table.add_row(Text(r["name"] or "(policy only)"), r["key_id"], "yes" if r["trusted"] else "no",
                      Text(r["public_key"]))
    console().print(table)

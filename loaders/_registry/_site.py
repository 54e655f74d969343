"""The marketplace site: a static web site built from an index (docs/registry.md).

    <out>/index.html                    search and filters (site/app.js reads the embedded JSON)
    <out>/plugins.json                  the same data for other tools
    <out>/plugins/<id>/index.html       one plugin: README, versions, compatibility, what it
                                        asks for with the policy's verdict, publisher and
                                        signature state, files with digests, reviews, install
    <out>/plugins/<id>/files/<path>.html  the source of each text file, escaped
    <out>/static/app.js, style.css      the only script and style (Content-Security-Policy)

Everything from the index and the archives is hostile: it is verified as ``install``
verifies it (a plugin whose archive or signature fails is listed with that state and no
contents), rendered with markdown-it-py with raw HTML off and only http(s)/mailto/relative
links, and escaped everywhere else. Every page carries a CSP that allows scripts and styles
only from the site itself, so no inline script, handler or ``javascript:`` URL can run.
"""

from __future__ import annotations

import functools
import hashlib
import html
import http.server
import json
import os
import re
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptline.policy import PolicyError

from .._discovery import current_version, manifest_from_tree
from .._errors import LoaderError
from .._signing import MANIFEST_FILE, VerifiedPlugin, verify_plugin
from ._archive import extract_archive
from ._errors import RegistryError
from ._index import INDEX_FILE, MAX_INDEX_BYTES, Index, IndexEntry, _join, _read
from ._reviews import Review, verified_reviews
from ._versions import requires_ok

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'")
STATIC = Path(__file__).with_name("site")
MAX_SOURCE_BYTES = 512 * 1024         # larger text files are listed, not shown
README_NAMES = ("README.md", "readme.md", "README.markdown", "README", "README.txt")


@dataclass
class SitePlugin:
    """What the site shows of one plugin (its newest version)."""

    entry: IndexEntry
    versions: list[IndexEntry]
    entry_state: str                 # the index entry's signature: "trusted key X" | ...
    tree_state: str
    error: str = ""                  # why its contents are not shown
    manifest: Any = None
    verified: VerifiedPlugin | None = None
    checks: list[Any] | None = None
    reviews: list[Review] | None = None
    usage: dict[str, Any] | None = None      # plugin_stats() from a host's audit log


def build_site(index: str | os.PathLike, out: str | os.PathLike, *, policy_files: Iterable[str] = (),
               version: str | None = None, latest: str | None = None, index_url: str | None = None,
               audit_log: str | os.PathLike | None = None) -> Path:
    """Write the static site for ``index`` into ``out`` (replaced); return ``out``.

    ``policy_files``: the policy whose trusted keys and verdicts the pages show (the shipped
    default when empty); ``version``: the PromptLine version being browsed (this one by
    default); ``latest``: the newest PromptLine to show compatibility with (default
    ``version``); ``index_url``: the index address printed in install commands;
    ``audit_log``: a host's audit log, for a "usage on this host" section per plugin
    (computed here, from that file only)."""
    from ._install import Registry

    idx = Index.open(index)
    raw = _read(_join(idx.location, INDEX_FILE), MAX_INDEX_BYTES, what="index")
    doc = json.loads(raw.decode("utf-8"))
    files = [os.fspath(f) for f in policy_files]
    version = version or current_version()
    latest = latest or version
    out_dir = Path(out)
    with tempfile.TemporaryDirectory(prefix=".promptline-site-") as tmp:
        reg = Registry(Path(tmp) / "plugins", policy_files=files, approvals=Path(tmp) / "approvals.yaml",
                       index=idx.location, version=version)
        settings = reg.settings()
        plugins = [_inspect(reg, idx, pid, settings, Path(tmp) / pid, doc) for pid in sorted(idx.plugins)]
        if audit_log is not None:
            from promptline.enforcer.audit import read_records

            from ._stats import plugin_stats
            records = list(read_records(audit_log))
            for p in plugins:
                p.usage = plugin_stats(records, p.entry.id)
        staging = Path(tempfile.mkdtemp(prefix=".promptline-site-", dir=out_dir.parent if out_dir.parent.exists()
                                        else None))
        try:
            _write_site(staging, plugins, version=version, latest=latest,
                        index_url=index_url or idx.location, policy=", ".join(os.path.basename(f) for f in files) or "no policy (manifest grants only)")
            if out_dir.exists():
                shutil.rmtree(out_dir)
            shutil.move(str(staging), str(out_dir))
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return out_dir


def _inspect(reg, idx: Index, pid: str, settings, tmp: Path, doc: Any) -> SitePlugin:
    versions = idx.versions(pid)
    entry = versions[0]
    trusted = settings.trusted_keys or ()
    try:
        kid = entry.verify(trusted, require_signature=False)
        entry_state = (f"signed by trusted key {kid}" if kid else
                       f"signed by untrusted key {entry.key_id}" if entry.signature else "unsigned")
    except RegistryError as exc:
        return SitePlugin(entry, versions, "signature invalid", "not checked", error=exc.message,
                          reviews=verified_reviews(doc, pid))
    site = SitePlugin(entry, versions, entry_state, "not checked", reviews=verified_reviews(doc, pid))
    try:
        tmp.mkdir(parents=True)
        archive = idx.download(entry, tmp / "download.tar.gz")
        root = extract_archive(archive, tmp / "unpacked", plugin=pid)
        verified = verify_plugin(root, trusted, require_signature=False, plugin=pid)
        manifest = manifest_from_tree(verified, origin=f"{pid} {entry.version}: {MANIFEST_FILE}")
        from ._install import _check_entry, capability_checks
        _check_entry(entry, manifest, verified)
        site.checks = capability_checks(reg, manifest, verified)
    except (LoaderError, PolicyError, OSError) as exc:
        site.error = getattr(exc, "message", None) or str(exc)
        site.tree_state = "refused"
        return site
    site.verified, site.manifest = verified, manifest
    site.tree_state = (f"signed by trusted key {verified.key_id}" if verified.signed else
                       verified.note or "unsigned")
    return site


# ---------------------------------------------------------------------------------------
# Rendering


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def safe_link(url: str) -> bool:
    """http(s), mailto, or relative without a scheme (``javascript:``, ``data:``, ``//host`` are not)."""
    u = url.strip()
    try:
        scheme = urllib.parse.urlsplit(u).scheme.lower()
    except ValueError:
        return False
    if scheme:
        return scheme in ("http", "https", "mailto")
    return not u.startswith(("//", "\\")) and ":" not in u.split("/", 1)[0]


@functools.cache
def _markdown():
    from markdown_it import MarkdownIt
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = safe_link
    return md


def render_markdown(text: str) -> str:
    """README Markdown as HTML: raw HTML is shown as text, links other than http(s),
    mailto and relative ones are not links."""
    return _markdown().render(text)


def _page(title: str, body: str, depth: int) -> str:
    up = "../" * depth
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title><link rel=\"stylesheet\" href=\"{up}static/style.css\"></head>\n"
            f"<body><header><a href=\"{up}index.html\">PromptLine plugins</a></header><main>\n{body}\n</main>"
            f"<script src=\"{up}static/app.js\"></script></body></html>\n")


def _compat(requires: str, version: str, latest: str) -> str:
    cells = []
    for label, v in (("this PromptLine", version), ("latest PromptLine", latest)):
        ok = requires_ok(requires, v)
        cells.append(f"<li class=\"{'ok' if ok else 'bad'}\" data-compat=\"{'yes' if ok else 'no'}\">"
                     f"{_e(label)} {_e(v)}: {'compatible' if ok else 'not compatible'}</li>")
    return f"<ul class=\"compat\">{''.join(cells)}</ul>"


def _write_site(out: Path, plugins: list[SitePlugin], *, version: str, latest: str, index_url: str,
                policy: str) -> None:
    (out / "static").mkdir(parents=True)
    for name in ("app.js", "style.css"):
        shutil.copyfile(STATIC / name, out / "static" / name)
    listing = [_summary(p, version) for p in plugins]
    data = json.dumps(listing, sort_keys=True)
    (out / "plugins.json").write_text(data + "\n", encoding="utf-8")
    embedded = data.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    filters = "".join(
        f"<label>{_e(label)} <select id=\"f-{key}\"><option value=\"\">any</option></select></label>"
        for key, label in (("type", "type"), ("keyword", "keyword"), ("sandbox", "sandbox"),
                           ("publisher", "publisher")))
    body = (f"<h1>Plugins</h1><p class=\"meta\">{len(plugins)} plugins; compatibility with PromptLine "
            f"{_e(version)}; verdicts of {_e(policy)}</p>"
            f"<div class=\"filters\"><input id=\"q\" type=\"search\" placeholder=\"search plugins\" "
            f"aria-label=\"search\">{filters}</div><ul id=\"results\"></ul>"
            f"<script type=\"application/json\" id=\"plugin-data\">{embedded}</script>")
    (out / "index.html").write_text(_page("PromptLine plugins", body, 0), encoding="utf-8")
    for p in plugins:
        _write_plugin(out / "plugins" / p.entry.id, p, version=version, latest=latest, index_url=index_url,
                      policy=policy)


def _summary(p: SitePlugin, version: str) -> dict[str, Any]:
    m = p.manifest
    return {"id": p.entry.id, "name": p.entry.name or p.entry.id, "description": p.entry.description,
            "version": p.entry.version, "types": list(m.types) if m else [],
            "keywords": list(m.keywords) if m else [], "sandbox": m.sandbox if m else "",
            "publisher": p.entry.key_id or "unsigned", "author": m.author if m else "",
            "compatible": requires_ok(p.entry.requires, version), "state": p.entry_state,
            "url": f"plugins/{urllib.parse.quote(p.entry.id)}/index.html"}


def _write_plugin(d: Path, p: SitePlugin, *, version: str, latest: str, index_url: str, policy: str) -> None:
    e, m = p.entry, p.manifest
    parts = [f"<h1>{_e(e.name or e.id)} <span class=\"version\">{_e(e.version)}</span></h1>",
             f"<p class=\"desc\">{_e(e.description)}</p>"]
    install = f"promptline plugin install {e.id}@{e.version} --index {index_url}"
    parts.append(f"<section id=\"install\"><h2>Install</h2><pre><code>{_e(install)}</code></pre></section>")
    parts.append(f"<section id=\"compatibility\"><h2>Compatibility</h2><p>requires "
                 f"<code>{_e(e.requires or 'any')}</code></p>{_compat(e.requires, version, latest)}</section>")
    parts.append(f"<section id=\"publisher\"><h2>Publisher and signatures</h2><ul>"
                 f"<li>publisher key: <code>{_e(e.key_id or 'none')}</code></li>"
                 f"<li>index entry: <span class=\"sig\">{_e(p.entry_state)}</span></li>"
                 f"<li>plugin tree: <span class=\"sig\">{_e(p.tree_state)}</span></li></ul>"
                 + (f"<p class=\"bad\">not shown: {_e(p.error)}</p>" if p.error else "") + "</section>")
    if m is not None:
        links = [(label, url) for label, url in (("homepage", m.homepage), ("repository", m.repository),
                                                 ("issues", m.issues or _issues_from(m.repository))) if url]
        if links or m.author or m.license or m.keywords:
            items = "".join(f"<li>{_e(label)}: <a href=\"{_e(url)}\" rel=\"nofollow noopener noreferrer\">"
                            f"{_e(url)}</a></li>" for label, url in links)
            items += f"<li>author: {_e(m.author)}</li>" if m.author else ""
            items += f"<li>license: {_e(m.license)}</li>" if m.license else ""
            items += (f"<li>keywords: {_e(', '.join(m.keywords))}</li>" if m.keywords else "")
            items += f"<li>sandbox: {_e(m.sandbox)}; types: {_e(', '.join(m.types))}</li>"
            parts.append(f"<section id=\"links\"><h2>About</h2><ul>{items}</ul></section>")
        if m.dependencies:
            deps = "".join(f"<li><a href=\"../{_e(urllib.parse.quote(dep))}/index.html\">{_e(dep)}</a> "
                           f"<code>{_e(spec or 'any')}</code></li>" for dep, spec in sorted(m.dependencies.items()))
            parts.append(f"<section id=\"dependencies\"><h2>Dependencies</h2><ul>{deps}</ul></section>")
    if p.checks is not None:
        rows = "".join(f"<tr class=\"v-{_e(c.verdict)}\"><td>{_e(c.capability)}</td><td><code>{_e(c.action)} "
                       f"{_e(c.resource)}</code></td><td class=\"verdict\">{_e(c.verdict)}</td><td>{_e(c.reason)}"
                       f"</td></tr>" for c in p.checks)
        parts.append(f"<section id=\"capabilities\"><h2>What it asks for</h2><p class=\"meta\">verdicts of "
                     f"{_e(policy)}, as if approved</p><table id=\"capability-table\"><thead><tr><th>capability"
                     f"</th><th>checked as</th><th>verdict</th><th>because</th></tr></thead><tbody>{rows}"
                     f"</tbody></table></section>")
    rows = "".join(f"<tr><td>{_e(v.version)}</td><td>{_e(v.published_at or '?')}</td><td><code>"
                   f"{_e(v.requires or 'any')}</code></td><td>{'yes' if requires_ok(v.requires, version) else 'no'}"
                   f"</td></tr>" for v in p.versions)
    parts.append(f"<section id=\"versions\"><h2>Versions</h2><table><thead><tr><th>version</th><th>published"
                 f"</th><th>requires</th><th>works with {_e(version)}</th></tr></thead><tbody>{rows}</tbody>"
                 f"</table></section>")
    reviews = p.reviews or []
    items = "".join(f"<li class=\"review\"><span class=\"rating\" title=\"{r.rating} of 5\">{'★' * r.rating}"
                    f"{'☆' * (5 - r.rating)}</span> <b>{_e(r.author)}</b> <span class=\"meta\">key "
                    f"<code>{_e(r.key_id)}</code> · {_e(r.date)}</span><p>{_e(r.text)}</p></li>" for r in reviews)
    parts.append(f"<section id=\"reviews\"><h2>Reviews ({len(reviews)})</h2><ul>{items}</ul>"
                 f"<p class=\"meta\">only reviews whose signature verifies are shown</p></section>")
    if p.usage is not None:
        u = p.usage
        rows = "".join(f"<tr><td>{_e(tool)}</td><td>{t['calls']}</td><td>{t['refused']}</td><td>"
                       f"{_e(_ms(t['p50_ms']))}</td><td>{_e(_ms(t['p99_ms']))}</td></tr>"
                       for tool, t in u["tools"].items())
        rules = "".join(f"<li><code>{_e(rule)}</code>: {n}</li>" for rule, n in u["refusals_by_rule"].items())
        note = "" if u["latency_recorded"] else "<p class=\"meta\">latency: not recorded by this audit log</p>"
        parts.append(f"<section id=\"usage\"><h2>Usage on this host</h2><p class=\"meta\">from the local audit "
                     f"log, {_e(u['first'] or '-')} .. {_e(u['last'] or '-')}</p><table><thead><tr><th>tool</th>"
                     f"<th>calls</th><th>refused</th><th>p50 ms</th><th>p99 ms</th></tr></thead><tbody>{rows}"
                     f"</tbody></table>{note}<h3>Refusals by rule</h3><ul>{rules}</ul></section>")
    if p.verified is not None:
        readme = next((n for n in README_NAMES if n in p.verified.files), None)
        if readme is not None:
            text = p.verified.files[readme].decode("utf-8", "replace")
            parts.insert(2, f"<section id=\"readme\" class=\"readme\">{render_markdown(text)}</section>")
        _write_files(d, p, parts)
    d.mkdir(parents=True, exist_ok=True)
    (d / "index.html").write_text(_page(f"{e.id} — PromptLine plugins", "\n".join(parts), 2), encoding="utf-8")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _write_files(d: Path, p: SitePlugin, parts: list[str]) -> None:
    assert p.verified is not None
    rows = []
    for rel in sorted(p.verified.files):
        data = p.verified.files[rel]
        digest = hashlib.sha256(data).hexdigest()
        text = _as_text(data)
        href = "files/" + urllib.parse.quote(rel) + ".html"
        name = f"<a href=\"{_e(href)}\">{_e(rel)}</a>" if text is not None else _e(rel)
        rows.append(f"<tr><td>{name}</td><td>{len(data)}</td><td><code>{digest}</code></td></tr>")
        if text is not None:
            target = d / "files" / (rel + ".html")
            target.parent.mkdir(parents=True, exist_ok=True)
            depth = 3 + rel.count("/")
            body = (f"<h1>{_e(p.entry.id)} {_e(p.entry.version)}: {_e(rel)}</h1><p class=\"meta\">sha256 "
                    f"<code>{digest}</code></p><pre class=\"source\"><code>{_e(text)}</code></pre>")
            target.write_text(_page(f"{rel} — {p.entry.id}", body, depth), encoding="utf-8")
    parts.append(f"<section id=\"files\"><h2>Files</h2><p class=\"meta\">tree digest <code>"
                 f"{_e(p.verified.digest)}</code></p><table><thead><tr><th>file</th><th>bytes</th><th>sha256</th>"
                 f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>")


def _as_text(data: bytes) -> str | None:
    if len(data) > MAX_SOURCE_BYTES or b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _issues_from(repository: str) -> str:
    m = re.match(r"^https://(github\.com|gitlab\.com|codeberg\.org)/([^/\s]+)/([^/\s]+?)(\.git)?/?$", repository or "")
    return f"https://{m.group(1)}/{m.group(2)}/{m.group(3)}/issues" if m else ""


# ---------------------------------------------------------------------------------------
# Serving


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with the site's CSP; ``/index/`` maps to the index directory."""

    index_dir: str | None = None

    def translate_path(self, path: str) -> str:
        clean = urllib.parse.urlsplit(path).path
        if self.index_dir and (clean == "/index" or clean.startswith("/index/")):
            rel = urllib.parse.unquote(clean[len("/index"):]).lstrip("/")
            base = os.path.realpath(self.index_dir)
            target = os.path.realpath(os.path.join(base, rel))
            return target if target == base or target.startswith(base + os.sep) else os.path.join(base, ".promptline-refused")
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def serve_site(index: str | os.PathLike, *, port: int = 0, site_dir: str | os.PathLike | None = None,
               **build: Any) -> tuple[http.server.ThreadingHTTPServer, str, threading.Thread]:
    """Build the site (into ``site_dir`` or a temporary directory) and serve it on
    127.0.0.1 in a background thread, with the index itself under ``/index/`` when it is a
    directory. Returns (server, base URL, thread); ``server.shutdown()`` stops it."""
    local = not str(index).startswith(("http://", "https://"))
    out = Path(site_dir) if site_dir else Path(tempfile.mkdtemp(prefix="promptline-site-")) / "site"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    if local and "index_url" not in build:
        build["index_url"] = url + "index/"
    build_site(index, out, **build)
    handler = type("SiteHandler", (_Handler,), {"index_dir": Index.open(index).location if local else None})
    server.RequestHandlerClass = functools.partial(handler, directory=str(out))  # type: ignore[assignment]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return server, url, thread


__all__ = ["build_site", "serve_site", "render_markdown", "CSP", "SitePlugin"]

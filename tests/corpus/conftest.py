"""The corpus of realistic plugins, loaded through the real PluginManager.

Every plugin under ``plugins/`` is written the way an author would from the README: a
``plugin.yaml`` and a module. Its manifest names the one grant its main call needs as
``${GRANT}``; ``${SANDBOX}`` and ``${WORK}`` are the level and the plugin's workspace.

``corpus`` is one PluginManager per (level, variant), shared by every test of the module
(plugins start once per manager; a process plugin's child starts on its first call):
``granted`` fills ``${GRANT}`` in, ``refused`` leaves it empty (for the plugins that need no
grant, ``refused`` adds a deny rule instead, to show that a deny beats the baseline).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import string
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from promptline.enforcer.audit import AuditLog, read_records
from promptline.loaders import ApprovalStore, PluginManager

HERE = Path(__file__).parent
PLUGINS = HERE / "plugins"
REPO = HERE.parents[1]
LEVELS = ("none", "process")
VARIANTS = ("granted", "refused")
from corpus_helpers import TOKEN  # noqa: E402,F401 - shared with the tests


def grants(port: int) -> dict[str, str]:
    """plugin id -> the one grant its main call needs (as the manifest's list item)."""
    return {
        "sqlite-notes": '"${WORK}/db/"',
        "http-fetch": f'"127.0.0.1:{port}"',
        "data-formats": '"${WORK}/"',
        "archives": '"${WORK}/out/"',
        "file-organizer": '"${WORK}/out/"',
        "scratch": '"${WORK}/out/"',
        "git-info": "git",
        "async-reader": '"${WORK}/texts/"',
        "thread-reader": '"${WORK}/texts/"',
        "log-writer": '"${WORK}/out/"',
        "env-token": "CORPUS_TOKEN",
        "many-files": '"${WORK}/texts/"',
        "prompt-library": '"${WORK}/prompts/"',
        "vendored-slug": '"${WORK}/data/"',
        "pure-compute": "",     # needs no grant: `refused` adds a deny rule on the baseline
        "stdlib-tour": "",      # needs no grant: `refused` denies writing its data dir
    }


def _workspace(work: Path) -> None:
    for d in ("db", "out", "texts", "prompts", "data"):
        (work / d).mkdir(parents=True, exist_ok=True)
    items = [{"name": f"item{i}", "n": i} for i in range(3)]
    (work / "data" / "items.json").write_text(json.dumps(items))
    (work / "data" / "items.csv").write_text("name,n\n" + "".join(f"item{i},{i}\n" for i in range(4)))
    (work / "data" / "items.xml").write_text("<items>" + "<item/>" * 5 + "</items>")
    (work / "data" / "items.toml").write_text("".join(f"[[item]]\nn = {i}\n" for i in range(6)))
    (work / "data" / "titles.txt").write_text("Hello, World!\nÉté à Paris\n  \nPromptLine 2.0\n")
    for i in range(120):
        (work / "texts" / f"t{i:03d}.txt").write_text(("needle " if i % 10 == 0 else "") + f"word{i} " * (i % 7 + 1))
    (work / "prompts" / "summarize.md").write_text("Summarize {{ text }} in {{ words }} words.")
    (work / "prompts" / "translate.md").write_text("Translate {{ text }} into {{ language }}.")


def _policy(path: Path, level: str, variant: str, data_root: Path) -> str:
    rules = []
    if variant == "refused":
        rules = [
            {"id": "no-timezones", "effect": "deny", "actions": ["fs.read"], "plugins": ["pure-compute"],
             "when": 'within(request.path, "/usr/share/zoneinfo")', "message": "no time zone data"},
            {"id": "no-tour-data", "effect": "deny", "actions": ["fs.write"], "plugins": ["stdlib-tour"],
             "when": f'within(request.path, "{os.path.realpath(data_root)}")', "message": "read-only data"},
        ]
    ids = sorted(p.name for p in PLUGINS.iterdir() if (p / "plugin.yaml").exists())
    path.write_text(json.dumps({"apiVersion": "promptline/v1", "kind": "Policy", "layer": "org",
                                "settings": {"trust": ids if level == "none" else []}, "rules": rules}))
    os.chmod(path, 0o644)
    return str(path)


@dataclass
class Corpus:
    level: str
    variant: str
    pm: PluginManager
    work: Path
    audit_path: Path
    url: str
    report: object

    @property
    def granted(self) -> bool:
        return self.variant == "granted"

    def call(self, tool: str, args: dict | None = None, timeout: float = 30.0):
        return self.pm.call_tool(tool, args or {}, timeout=timeout)

    def denies(self, plugin: str) -> list[dict]:
        self.pm.audit_log.flush()
        return [r for r in read_records(self.audit_path)
                if (r.get("plugin") or {}).get("id") == plugin and r.get("decision") == "deny"]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):   # noqa: N802 - http.server's name
        body = json.dumps({"path": self.path.split("?")[0], "query": self.path.partition("?")[2]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module", params=[(lv, va) for lv in LEVELS for va in VARIANTS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def corpus(request, tmp_path_factory, http_server):
    level, variant = request.param
    root = tmp_path_factory.mktemp(f"corpus-{level}-{variant}")
    work = root / "work"
    _workspace(work)
    tree = root / "plugins"
    g = grants(http_server)
    for src in sorted(PLUGINS.iterdir()):
        if not (src / "plugin.yaml").exists():
            continue
        dst = tree / src.name
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        grant = g[src.name] if variant == "granted" else ""
        text = string.Template((src / "plugin.yaml").read_text()).safe_substitute(GRANT=grant)
        text = string.Template(text).substitute(SANDBOX=level, WORK=str(work))
        (dst / "plugin.yaml").write_text(text)
    audit_path = root / "audit" / "audit.jsonl"     # its directory is protected: keep it apart
    audit_path.parent.mkdir()
    log = AuditLog(str(audit_path))
    data_root = root / "plugin-data"
    policies = [str(REPO / "policies" / "default.yaml"), _policy(root / "corpus-policy.yaml", level, variant, data_root)]
    old = os.environ.get("CORPUS_TOKEN")
    os.environ["CORPUS_TOKEN"] = TOKEN
    pm = PluginManager(policy_files=policies, search_path=[str(tree)], config_path=False, entry_points=False,
                       audit_log=log, approvals=ApprovalStore(str(root / "approvals.yaml")), approve_all=True,
                       call_timeout=30.0, data_dir=str(data_root))
    report = pm.load_all()
    try:
        yield Corpus(level, variant, pm, work, audit_path, f"http://127.0.0.1:{http_server}/hello", report)
    finally:
        pm.shutdown()
        if pm.enforcer is not None and level == "none":
            pm.enforcer.uninstall()
        if old is None:
            os.environ.pop("CORPUS_TOKEN", None)
        else:
            os.environ["CORPUS_TOKEN"] = old

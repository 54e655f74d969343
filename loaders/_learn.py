"""`plugin learn`: run a plugin's tools in audit mode and propose the smallest manifest.

The plugin runs with every would-be refusal allowed and logged (audit mode, docs/design.md §4);
the would-be refusals are then folded into a ``capabilities:`` block that would have
allowed them. Audit mode needs the in-process hooks, so learning runs the plugin's code in
this process: use it on code you trust (your own plugin), never on a stranger's.
Refusals by explicit deny rules are not lifted — they are reported, not learned.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._errors import LoaderError

DIR_THRESHOLD = 2   # files under one directory before the directory itself is proposed


@dataclass
class Learned:
    """What a learning run saw: the proposed capabilities and what policy still refuses.

    ``capabilities`` is the smallest block covering what the plugin did (learned from a run
    with no grants at all, so it is the same whatever the manifest declares today);
    ``missing`` lists what the manifest's current capabilities do not cover, and ``unused``
    the current entries nothing needed (``filesystem.read[1]: ~/old/``).
    """

    capabilities: dict[str, Any]
    refused: list[tuple[str, str, str]] = field(default_factory=list)   # (action, resource, rule)
    results: list[tuple[str, bool, str]] = field(default_factory=list)  # (tool, ok, content)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    @property
    def covered(self) -> bool:
        """True when the manifest's current capabilities already allow everything seen."""
        return not self.missing

    def to_yaml(self) -> str:
        return yaml.safe_dump({"capabilities": self.capabilities}, sort_keys=False)


def learn(plugin_dir: str | os.PathLike, calls: Sequence[tuple[str, dict]], *,
          policy_files: Sequence[str] = (), timeout: float = 30.0) -> Learned:
    """Load the plugin at ``plugin_dir`` in audit mode, make ``calls`` (tool, args), and fold
    the would-be refusals into a capabilities block."""
    from promptline.enforcer.audit import AuditLog, read_records
    from promptline.policy import load_manifest

    from ._approval import ApprovalStore
    from ._manager import PluginManager

    src = Path(plugin_dir)
    manifest = load_manifest(src / "plugin.yaml")
    if manifest.entry.kind != "python":
        raise LoaderError("learning needs a Python plugin (audit mode works through in-process hooks)",
                          plugin=manifest.id, fix="write the manifest of command and wasm plugins by hand")
    with tempfile.TemporaryDirectory(prefix="promptline-learn-") as tmp:
        work = Path(tmp)
        copy = work / "plugins" / manifest.id
        shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__", ".git", "plugin.sig"))
        # learn from no grants at all: every access is a would-be refusal, so the proposal is the
        # smallest block whatever the manifest declares today (compared with it below)
        data = yaml.safe_load((copy / "plugin.yaml").read_text(encoding="utf-8"))
        data.pop("capabilities", None)
        data["sandbox"] = "none"
        (copy / "plugin.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        layer = work / "learn.yaml"
        layer.write_text(yaml.safe_dump({
            "apiVersion": "promptline/v1", "kind": "Policy", "layer": "user",
            "settings": {"trust": [manifest.id], "plugin_modes": {manifest.id: "audit"}}}))
        log_path = work / "audit.jsonl"
        log = AuditLog(str(log_path))
        pm = PluginManager(policy_files=[*policy_files, str(layer)], search_path=[str(work / "plugins")],
                           config_path=False, entry_points=False, audit_log=log,
                           approvals=ApprovalStore(str(work / "approvals.yaml")), approve_all=True,
                           call_timeout=timeout)
        with pm:
            report = pm.load_all()
            if manifest.id not in report.loaded:
                why = "; ".join(w for _, w in report.refused) or "not found"
                raise LoaderError(f"cannot load it for learning: {why}", plugin=manifest.id)
            results = []
            for tool, args in calls:
                r = pm.call_tool(f"{manifest.id}.{tool}", args)
                results.append((tool, r.ok, r.content))
        log.flush()
        records = [r for r in read_records(str(log_path))
                   if r.get("kind") == "decision" and (r.get("plugin") or {}).get("id") == manifest.id]
    learned = fold(records)
    learned.results = results
    learned.missing, learned.unused = compare(records, src / "plugin.yaml", manifest, policy_files)
    return learned


def compare(records: list[dict], manifest_path: Path, manifest: Any,
            policy_files: Sequence[str]) -> tuple[list[str], list[str]]:
    """(what the manifest's current grants do not cover, which of its entries nothing used),
    judged by the policy engine itself: each learned request is explained against the
    policy files plus the manifest as it is."""
    from promptline.policy import Request, Verdict, load_policy_set

    ps = load_policy_set(list(policy_files), [manifest_path])
    prefix = f"manifest:{manifest.id}:"
    entries = {r.id[len(prefix):] for r in ps.rules if r.id.startswith(prefix)} - {"load"}
    used: set[str] = set()
    missing = set()
    for r in records:
        if not r.get("would_deny") or r.get("decision") == "deny":
            continue
        try:
            request = Request.from_dict(r.get("request") or {})
        except ValueError:
            continue
        ex = ps.explain(request)
        used.update(t.rule.id[len(prefix):] for t in ex.traces if t.matched and t.rule.id.startswith(prefix))
        if ex.decision.verdict is not Verdict.ALLOW:
            missing.add(f"{request.action} {request.resource}")
    used |= {e[: -len(".resolve")] for e in used if e.endswith(".resolve")}   # one network entry, two rules
    unused = sorted(e for e in entries - used if not e.endswith(".resolve"))
    return sorted(missing), [f"{e}: {_entry_value(manifest, e)}" for e in unused]


def _entry_value(manifest: Any, entry: str) -> str:
    """The manifest value behind a grant name such as ``filesystem.read[1]`` or ``network[0].resolve``."""
    name, _, rest = entry.partition("[")
    caps = manifest.capabilities
    if name == "native":
        return "true"
    index = int(rest.split("]")[0]) if rest else 0
    seq = {"filesystem.read": caps.filesystem.read, "filesystem.write": caps.filesystem.write,
           "network": caps.network, "environment": caps.environment, "process": caps.process}.get(name, ())
    return str(seq[index]) if index < len(seq) else "?"


def fold(records: list[dict]) -> Learned:
    """Fold decision records into the smallest capabilities block that allows what audit mode
    let through; refusals by explicit rules are listed instead."""
    home = os.path.expanduser("~")
    files: dict[str, set[str]] = {"read": set(), "write": set()}
    network, env, procs = set(), set(), set()
    native = False
    refused = []
    for r in records:
        req = r.get("request") or {}
        action = r.get("action", "")
        if r.get("decision") == "deny":
            refused.append((action, r.get("resource", ""), r.get("rule") or "default"))
            continue
        if not r.get("would_deny"):
            continue
        if action in ("fs.read", "fs.write"):
            files["read" if action == "fs.read" else "write"].add(req.get("path", ""))
        elif action == "net.connect":
            host, port = req.get("host", ""), req.get("port", 0)
            network.add(f"{host}:{port}" if port else host)
        elif action == "net.resolve":
            network.add(req.get("host", ""))
        elif action == "env.read":
            env.add(req.get("name", ""))
        elif action == "process.exec":
            argv = req.get("argv") or []
            procs.add(argv[0] if argv else req.get("path", ""))
        elif action == "native.load":
            native = True
    caps: dict[str, Any] = {}
    fs = {k: _fold_paths(v, home) for k, v in files.items() if v}
    if fs:
        caps["filesystem"] = fs
    hosts = {n.split(":")[0] for n in network if ":" in n}
    net = sorted(n for n in network if n and (":" in n or n not in hosts))
    if net:
        caps["network"] = net
    if env:
        caps["environment"] = sorted(e for e in env if e)
    if procs:
        caps["process"] = sorted(p for p in procs if p)
    if native:
        caps["native"] = True
    return Learned(caps, sorted(set(refused)))


def _fold_paths(paths: set[str], home: str) -> list[str]:
    by_dir: dict[str, set[str]] = defaultdict(set)
    for p in paths:
        if p:
            by_dir[os.path.dirname(p) or "/"].add(p)
    out = set()
    for d, members in by_dir.items():
        if len(members) >= DIR_THRESHOLD:
            out.add(d.rstrip("/") + "/")
        else:
            out.update(members)
    out = {p for p in out if not any(p != q and q.endswith("/") and p.startswith(q) for q in out)}
    return sorted(("~" + p[len(home):]) if home != "/" and (p == home or p.startswith(home + "/")) else p
                  for p in out)


def parse_calls(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, dict]]:
    out = []
    for tool, text in pairs:
        try:
            args = json.loads(text)
        except ValueError as exc:
            raise LoaderError(f"arguments of `{tool}` are not JSON: {exc}", fix="quote them: '{\"q\": 1}'") from None
        if not isinstance(args, dict):
            raise LoaderError(f"arguments of `{tool}` must be a JSON object", fix='e.g. \'{"q": 1}\'')
        out.append((tool, args))
    return out

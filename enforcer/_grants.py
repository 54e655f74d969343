"""Remembered prompt answers ("always" / "never"), kept as an ordinary user-layer policy.

The file is a policy a person can read and edit (docs/design.md §4)::

    apiVersion: promptline/v1
    kind: Policy
    layer: user
    rules:
    - id: grant-database-tools-fs-read-3f2a9c1b
      effect: allow
      actions: [fs.read]
      plugins: [database-tools]
      match: {path: /home/me/.config/db.yaml}
      message: you answered `always` at a prompt; `promptline grants revoke <id>` undoes it
      description: granted 2026-11-27T10:15:00Z by prompt for rule ask-config (org.yaml:12)

Each grant's ``match`` (a structured rule condition, see ``policy.Match``) pins exactly one
resource: the request fields as plain YAML values, which the policy compiler turns into CEL
string literals (``cel_string``), so a hostile path stays a path and nothing here reads CEL.
Grant files of older versions wrote the same condition as ``when:`` CEL text; such rules still
load and decide as policy, and are listed with their ``when`` text (never parsed back).
Writes are atomic (temporary file + ``os.replace``) under a ``filelock`` so host and children
can share the file. Comments in a hand-edited file are not preserved when ``promptline``
rewrites it.
"""

from __future__ import annotations

import builtins
import datetime
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import filelock
import yaml

from promptline.policy import ACTIONS, Effect, PromptLineError, Request, RuleRef

from ._files import write_atomic

GRANTS_ENV = "PROMPTLINE_GRANTS"
"""Environment variable overriding the grants file path."""

MAX_GRANTS_FILE_BYTES = 4 * 1024 * 1024
"""A grants file larger than this is refused as unreadable (it is written one rule a time)."""

LOCK_TIMEOUT_S = 10.0
"""Seconds to wait for another process holding the grants file lock before failing."""

API_VERSION = "promptline/v1"
_HEADER = ("# PromptLine remembered prompt answers: the user policy layer.\n"
           "# Managed by `promptline grants list|revoke`; an ordinary policy file.\n")


class GrantError(PromptLineError):
    """The grants file cannot be read or written, or a grant is unknown."""

    code = "grants"


def default_grants_path() -> str:
    """``$PROMPTLINE_GRANTS``, else ``grants.yaml`` in the user's PromptLine config dir."""
    env = os.environ.get(GRANTS_ENV)
    if env:
        return os.path.abspath(os.path.expanduser(env))
    import platformdirs  # only needed for the default location
    return os.path.join(platformdirs.user_config_dir("promptline"), "grants.yaml")


# --------------------------------------------------------------------------- matching

def _match_fields(request: Request) -> tuple[tuple[str, Any], ...]:
    """The request fields a grant for this request pins down exactly."""
    a = request.action
    f: tuple[tuple[str, Any], ...]
    if a.startswith("fs."):
        f = (("path", request.path),)
    elif a.startswith("net."):
        f = ((("host", request.host), ("port", request.port)) if request.host
             else (("url", request.url),))
    elif a.startswith("env."):
        f = (("name", request.name),)
    elif a == "process.exec":
        f = (("argv", request.argv),) if request.argv else (("path", request.path),)
    elif a == "native.load":
        f = (("name", request.name),) if request.name else (("path", request.path),)
    elif a == "tool.call":
        f = (("tool", request.tool),)
    else:  # plugin.load
        f = (("plugin", request.plugin),)
    if not f[0][1]:
        raise GrantError(f"cannot remember `{a}` without a resource")
    return f


def _match(fields: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """The rule's ``match`` mapping for these fields (plain YAML values)."""
    out: dict[str, Any] = {}
    for name, value in fields:
        for text in value if isinstance(value, tuple) else (value,):
            if isinstance(text, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in text):
                raise GrantError("cannot remember a resource with undecodable characters")
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


_MATCH_TYPES: dict[str, type] = {"port": int, "argv": tuple}


def _read_match(value: Any) -> dict[str, Any] | None:
    """A rule's ``match`` as request fields, or None when it is not a plain mapping of
    request fields to values of their type (the policy loader reports such a file)."""
    if not isinstance(value, dict) or not value:
        return None
    fields: dict[str, Any] = {}
    for name, v in value.items():
        want = _MATCH_TYPES.get(name, str) if isinstance(name, str) else None
        if want is tuple and isinstance(v, list) and all(isinstance(x, str) for x in v):
            v = tuple(v)
        if want is None or type(v) is not want:
            return None
        fields[name] = v
    return fields


def _key(plugin: str, action: str, fields: tuple[tuple[str, Any], ...]) -> tuple:
    return (plugin, action, fields)


# --------------------------------------------------------------------------- grants

@dataclass(frozen=True, slots=True)
class Grant:
    """One remembered answer (or any rule found in the grants file).

    ``resource`` is what the rule matches, as a request would show it; for a rule this
    module did not write it is its ``match`` (as JSON) and ``when`` text. ``origin`` is
    ``file:line``; ``match`` the rule's structured condition, ``when`` its CEL condition.
    """

    id: str
    effect: str  # allow | deny
    plugin: str
    action: str
    resource: str
    granted_at: str
    asked_by: str
    origin: str
    when: str
    message: str = ""
    description: str = ""
    match: tuple[tuple[str, Any], ...] = ()

    def rule_ref(self) -> RuleRef:
        return RuleRef(id=self.id, effect=Effect(self.effect), layer="user",
                       origin=self.origin, message=self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "effect": self.effect, "plugin": self.plugin,
                "action": self.action, "resource": self.resource,
                "granted_at": self.granted_at, "asked_by": self.asked_by,
                "origin": self.origin, "when": self.when,
                "match": {k: list(v) if isinstance(v, tuple) else v for k, v in self.match},
                "description": self.description}


_DESCRIPTION = re.compile(r"^granted (\S+) by prompt(?: for rule (\S+))?")


@dataclass(frozen=True, slots=True)
class _Snapshot:
    stat: tuple | None
    version: str
    grants: tuple[Grant, ...]
    index: dict


class GrantStore:
    """The user's remembered answers, in one policy file (``path``).

    ``version`` changes whenever the file does, so hosts can reload the user layer;
    ``lookup`` re-reads the file when it changed, so a grant applies at once.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = os.path.abspath(os.fspath(path)) if path else default_grants_path()
        self.lock_path = self.path + ".lock"
        self._lock = filelock.FileLock(self.lock_path, timeout=LOCK_TIMEOUT_S)
        self._mutex = threading.Lock()  # guards _snap only; never held across I/O callbacks
        self._snap = _Snapshot(None, "", (), {})

    def __repr__(self) -> str:
        return f"GrantStore({self.path!r})"

    # -- reading

    @property
    def version(self) -> str:
        """A digest of the file's content (``"absent"`` when there is no file)."""
        return self._current().version

    def list(self) -> list[Grant]:
        return list(self._current().grants)

    def get(self, grant_id: str) -> Grant:
        for g in self._current().grants:
            if g.id == grant_id:
                return g
        raise GrantError(f"no grant `{grant_id}` in {self.path} — see `promptline grants list`")

    def lookup(self, plugin_id: str, request: Request) -> Grant | None:
        """The remembered answer for exactly this request, if any (deny wins over allow)."""
        try:
            fields = _match_fields(request)
        except GrantError:
            return None
        return self._current().index.get(_key(plugin_id, request.action, fields))

    def _current(self) -> _Snapshot:
        try:
            st = os.stat(self.path)
            sig: tuple | None = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
        except FileNotFoundError:
            sig = None
        except OSError as exc:
            raise GrantError(f"cannot read {self.path}: {exc.strerror}") from exc
        snap = self._snap
        if snap.stat == sig and snap.version:
            return snap
        text = self._read_text()
        new = self._parse(text, sig)
        with self._mutex:
            self._snap = new
        return new

    def _read_text(self) -> str | None:
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_GRANTS_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise GrantError(f"cannot read {self.path}: {exc.strerror}") from exc
        if len(data) > MAX_GRANTS_FILE_BYTES:
            raise GrantError(f"{self.path}: file is larger than {MAX_GRANTS_FILE_BYTES} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GrantError(f"{self.path}: not UTF-8 text") from exc

    def _load_doc(self, text: str | None) -> tuple[dict, builtins.list[dict], builtins.list[int]]:
        """(document, rules, line of each rule) of the file's text; validates the shape."""
        if text is None or not text.strip():
            return {}, [], []
        try:
            doc = yaml.safe_load(text)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{self.path}:{mark.line + 1}" if mark else self.path
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise GrantError(f"{where}: {problem} — fix or remove the file") from exc
        except RecursionError:
            raise GrantError(f"{self.path}: nested too deeply — fix or remove the file") from None
        if doc is None:
            return {}, [], []
        if not isinstance(doc, dict):
            raise GrantError(f"{self.path}:1: a policy file must be a mapping")
        if doc.get("kind", "Policy") != "Policy" or doc.get("layer", "user") != "user":
            raise GrantError(f"{self.path}:1: the grants file must be a `kind: Policy` "
                             f"with `layer: user`")
        rules = doc.get("rules") or []
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise GrantError(f"{self.path}: `rules` must be a list of mappings")
        lines = [0] * len(rules)
        for key_node, value_node in getattr(node, "value", ()):
            if getattr(key_node, "value", None) == "rules" and isinstance(value_node.value, list):
                lines = [n.start_mark.line + 1 for n in value_node.value]
        return doc, rules, lines

    def _parse(self, text: str | None, sig: tuple | None) -> _Snapshot:
        _, rules, lines = self._load_doc(text)
        version = ("absent" if text is None
                   else hashlib.sha256(text.encode("utf-8")).hexdigest()[:16])
        grants: list[Grant] = []
        index: dict = {}
        for rule, line in zip(rules, lines):
            grant, key = self._grant_of(rule, line)
            grants.append(grant)
            if key is not None and (key not in index or grant.effect == "deny"):
                index[key] = grant
        return _Snapshot(sig, version, tuple(grants), index)

    def _grant_of(self, rule: dict, line: int) -> tuple[Grant, tuple | None]:
        def text(name: str) -> str:
            v = rule.get(name)
            return v if isinstance(v, str) else ""

        actions = rule.get("actions") or []
        plugins = rule.get("plugins") or []
        actions = [a for a in actions if isinstance(a, str)] if isinstance(actions, list) else []
        plugins = [p for p in plugins if isinstance(p, str)] if isinstance(plugins, list) else []
        effect = text("effect")
        when = text("when")
        description = text("description")
        m = _DESCRIPTION.match(description)
        fields = _read_match(rule.get("match"))
        shown = [json.dumps(dict(fields) if fields else rule.get("match"), default=str)] \
            if "match" in rule else []
        resource, key = " && ".join(shown + ([when] if "when" in rule else [])), None
        # only a grant whose whole condition is a canonical `match` of one resource is looked
        # up here; any other rule still decides as policy, it is only listed
        if (fields is not None and "when" not in rule and len(actions) == 1 and len(plugins) == 1
                and actions[0] in ACTIONS and effect in ("allow", "deny") and "*" not in plugins[0]):
            kwargs = {k: v for k, v in fields.items() if k != "plugin"}
            try:
                if fields.get("plugin", plugins[0]) != plugins[0]:
                    raise ValueError("plugin mismatch")
                req = Request(actions[0], plugins[0], **kwargs)
                wanted = _match_fields(req)
            except (TypeError, ValueError, GrantError):
                wanted = None
            # only an exact, canonical match counts (e.g. a path written un-normalized
            # is still honoured by the policy engine but not used for lookups here)
            if wanted is not None and dict(wanted) == fields:
                resource = req.resource
                key = _key(plugins[0], actions[0], wanted)
        grant = Grant(id=str(rule.get("id", "")), effect=effect,
                      plugin=",".join(plugins), action=",".join(actions), resource=resource,
                      granted_at=m.group(1) if m else "", asked_by=(m.group(2) or "") if m else "",
                      origin=f"{self.path}:{line}" if line else self.path, when=when,
                      message=text("message"), description=description,
                      match=tuple(fields.items()) if fields else ())
        return grant, key

    # -- writing

    def remember(self, plugin_id: str, request: Request, effect: Effect | str,
                 asked_by: RuleRef | None = None) -> Grant:
        """Add (or replace) the remembered answer for exactly this request."""
        effect = Effect(effect)
        if effect is Effect.ASK:
            raise GrantError("only `allow` or `deny` can be remembered")
        fields = _match_fields(request)
        match = _match(fields)
        digest = hashlib.sha256(repr(_key(plugin_id, request.action, fields))
                                .encode("utf-8", "surrogatepass")).hexdigest()[:8]
        slug = re.sub(r"[^a-z0-9]+", "-", f"{plugin_id[:48]}-{request.action}".lower()).strip("-")
        grant_id = f"grant-{slug}-{digest}"
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        provenance = f"granted {now} by prompt"
        if asked_by is not None:
            provenance += f" for rule {asked_by.id} ({asked_by.origin})"
        answer = "always" if effect is Effect.ALLOW else "never"
        rule = {
            "id": grant_id,
            "effect": effect.value,
            "actions": [request.action],
            "plugins": [plugin_id],
            "match": match,
            "message": f"you answered `{answer}` at a prompt; "
                       f"`promptline grants revoke {grant_id}` undoes it",
            "description": provenance,
        }

        def add(rules: list, known: dict[str, Grant]) -> None:
            rules[:] = [r for r in rules if r.get("id") != grant_id]
            rules.append(rule)

        self._mutate(add)
        return self.get(grant_id)

    def revoke(self, grant_id: str) -> Grant:
        """Remove one grant; raises GrantError naming the id if there is none."""
        found: list[Grant] = []

        def drop(rules: list, known: dict[str, Grant]) -> None:
            if grant_id not in known:
                raise GrantError(f"no grant `{grant_id}` in {self.path} — "
                                 f"see `promptline grants list`")
            found.append(known[grant_id])
            rules[:] = [r for r in rules if r.get("id") != grant_id]

        self._mutate(drop)
        return found[0]

    def revoke_all(self, plugin: str | None = None) -> builtins.list[Grant]:
        """Remove every grant (of one plugin, if given); returns what was removed."""
        removed: list[Grant] = []

        def drop(rules: list, known: dict[str, Grant]) -> None:
            keep = []
            for r in rules:
                plugins = r.get("plugins") or []
                if plugin is None or (isinstance(plugins, list) and plugin in plugins):
                    if r.get("id") in known:
                        removed.append(known[r.get("id")])
                else:
                    keep.append(r)
            rules[:] = keep

        if not os.path.exists(self.path):
            return []
        self._mutate(drop)
        return removed

    def _mutate(self, change: Callable[[builtins.list, dict[str, Grant]], None]) -> None:
        """Read, change and atomically rewrite the file under the cross-process lock."""
        try:
            directory = os.path.dirname(self.path)
            os.makedirs(directory, mode=0o700, exist_ok=True)
            with self._lock:
                text = self._read_text()
                doc, rules, _ = self._load_doc(text)  # refuses to overwrite a broken file
                known = {g.id: g for g in self._parse(text, None).grants}
                change(rules, known)
                out = {"apiVersion": doc.get("apiVersion", API_VERSION),
                       "kind": "Policy", "layer": "user"}
                out.update({k: v for k, v in doc.items() if k not in out and k != "rules"})
                out["rules"] = rules
                body = _HEADER + yaml.safe_dump(out, sort_keys=False, allow_unicode=False,
                                                default_flow_style=None, width=4096)
                write_atomic(self.path, body)
                self._current()
        except filelock.Timeout as exc:
            raise GrantError(f"{self.lock_path} is held by another process — "
                             f"try again") from exc
        except OSError as exc:
            raise GrantError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

"""The decision workload of docs/design.md §12, generated from a fixed seed.

20 plugins with 2-6 capabilities each, 30 org rules (deny/ask/allow, using the CEL helpers
within/glob/host_matches/in_cidr/env_matches), and a request stream (fs/net/env mix) in which
about 20% of the requests are distinct and about 30% are denied.

Every rule and capability is kept as *data* (``Atom``s: one helper test each) so that the
same rules can be rendered to the policy YAML our engine reads, to a hand-written plain-Python
checker, to Cedar and to Casbin. The workload is restricted to what all four can express
exactly:

- a rule's condition is a disjunction of atoms, optionally AND-ed with ``request.port == N``;
- globs are only of the forms ``/**/*.ext`` and ``/**/name`` (a match on the last path
  component), because Cedar's ``like`` ``*`` crosses ``/`` and cannot stay in one component;
- hosts are lower-case names or IPv4 addresses; CIDRs are IPv4;
- no wildcard characters inside literal paths, hosts or names.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field

import yaml

SEED = 20240611
HOME = "/home/dev"   # absolute on purpose: the workload must not depend on the real $HOME

PLUGIN_IDS = tuple(f"plug-{i:02d}" for i in range(20))


@dataclass(frozen=True)
class Atom:
    """One test on one request field.

    kind: ``within`` (path dir), ``eq`` (path equals), ``glob`` (``/**/*.ext`` or ``/**/name``),
    ``host`` (exact or ``*.domain``), ``cidr``, ``env`` (exact, ``PREFIX_*`` or ``*_SUFFIX``),
    ``true`` (no test; used for port-only rules).
    """

    kind: str
    arg: str = ""


@dataclass(frozen=True)
class RuleSpec:
    id: str
    effect: str                    # deny | ask | allow
    actions: tuple[str, ...]
    atoms: tuple[Atom, ...]        # OR-ed
    port: int | None = None        # AND request.port == port
    plugins: tuple[str, ...] = ("*",)


@dataclass
class Plugin:
    id: str
    fs_read: list[str] = field(default_factory=list)
    fs_write: list[str] = field(default_factory=list)
    network: list[str] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)

    @property
    def n_caps(self) -> int:
        return len(self.fs_read) + len(self.fs_write) + len(self.network) + len(self.environment)

    def manifest(self) -> dict:
        return {"id": self.id, "name": f"Benchmark plugin {self.id}", "version": "1.0.0",
                "types": ["tool"], "entry": {"python": f"{self.id.replace('-', '_')}:Plugin"},
                "sandbox": "process",
                "capabilities": {"filesystem": {"read": list(self.fs_read), "write": list(self.fs_write)},
                                 "network": list(self.network), "environment": list(self.environment)}}

    def grant_rules(self) -> list[RuleSpec]:
        """The allow rules the manifest grants, as data (same meaning as policy.manifest_rules)."""
        out: list[RuleSpec] = []
        for i, d in enumerate(self.fs_read):
            out.append(RuleSpec(f"manifest:{self.id}:read[{i}]", "allow", ("fs.read",),
                                (Atom("within", d),), None, (self.id,)))
        for i, d in enumerate(self.fs_write):
            out.append(RuleSpec(f"manifest:{self.id}:write[{i}]", "allow", ("fs.write",),
                                (Atom("within", d),), None, (self.id,)))
        for i, entry in enumerate(self.network):
            host, port = _split_net(entry)
            atom = Atom("cidr", host) if "/" in host else Atom("host", host)
            out.append(RuleSpec(f"manifest:{self.id}:net[{i}].resolve", "allow", ("net.resolve",),
                                (atom,), None, (self.id,)))
            out.append(RuleSpec(f"manifest:{self.id}:net[{i}]", "allow", ("net.connect",),
                                (atom,), port, (self.id,)))
        for i, name in enumerate(self.environment):
            out.append(RuleSpec(f"manifest:{self.id}:env[{i}]", "allow", ("env.read",),
                                (Atom("env", name),), None, (self.id,)))
        return out


def _split_net(entry: str) -> tuple[str, int | None]:
    if "/" in entry:
        return entry, None
    if ":" in entry:
        host, port = entry.rsplit(":", 1)
        return host, int(port)
    return entry, None


def W(d: str) -> Atom:
    return Atom("within", d)


ORG_RULES: tuple[RuleSpec, ...] = (
    # -- deny (14)
    RuleSpec("no-ssh-keys", "deny", ("fs.read", "fs.write"), (W(f"{HOME}/.ssh"),)),
    RuleSpec("no-cloud-credentials", "deny", ("fs.read", "fs.write"),
             (W(f"{HOME}/.aws"), W(f"{HOME}/.config/gcloud"), W(f"{HOME}/.kube"))),
    RuleSpec("no-key-files", "deny", ("fs.read",), (Atom("glob", "/**/*.pem"), Atom("glob", "/**/*.key"))),
    RuleSpec("no-dotenv", "deny", ("fs.read", "fs.write"), (Atom("glob", "/**/.env"),)),
    RuleSpec("no-system-secrets", "deny", ("fs.read", "fs.write"),
             (Atom("eq", "/etc/shadow"), Atom("eq", "/etc/sudoers"), W("/etc/ssh"))),
    RuleSpec("no-cloud-metadata", "deny", ("net.connect", "net.resolve"),
             (Atom("cidr", "169.254.0.0/16"), Atom("host", "metadata.google.internal"))),
    RuleSpec("no-secret-env", "deny", ("env.read",),
             (Atom("env", "AWS_*"), Atom("env", "*_TOKEN"), Atom("env", "*_SECRET"),
              Atom("env", "*_PASSWORD"))),
    RuleSpec("no-prod-db", "deny", ("net.connect",), (Atom("host", "*.prod.internal"),), 5432),
    RuleSpec("no-system-writes", "deny", ("fs.write",), (W("/etc"), W("/usr"), W("/var/lib"))),
    RuleSpec("no-telemetry", "deny", ("net.connect", "net.resolve"),
             (Atom("host", "*.telemetry.example"), Atom("host", "stats.example.net")), None, ("plug-1*",)),
    RuleSpec("no-smtp", "deny", ("net.connect",), (Atom("true"),), 25),
    RuleSpec("no-shared-secrets", "deny", ("fs.read", "fs.write"), (W("/srv/shared/secrets"),), None,
             ("plug-0[0-4]",)),
    RuleSpec("no-home-lan", "deny", ("net.connect",), (Atom("cidr", "192.168.0.0/16"),), None,
             ("plug-0[5-9]", "plug-1[0-2]")),
    RuleSpec("no-history-files", "deny", ("fs.read",),
             (Atom("eq", f"{HOME}/.bash_history"), Atom("eq", f"{HOME}/.zsh_history"))),
    # -- ask (6)
    RuleSpec("ask-write-home", "ask", ("fs.write",), (W(HOME),)),
    RuleSpec("ask-ssh-port", "ask", ("net.connect",), (Atom("true"),), 22),
    RuleSpec("ask-db-env", "ask", ("env.read",), (Atom("env", "DATABASE_URL"), Atom("env", "*_DSN"))),
    RuleSpec("ask-shared-write", "ask", ("fs.write",), (W("/srv/shared"),)),
    RuleSpec("ask-third-party", "ask", ("net.connect",), (Atom("host", "*.thirdparty.io"),)),
    RuleSpec("ask-read-logs", "ask", ("fs.read",), (W("/var/log"),), None, ("plug-1[5-9]",)),
    # -- allow (10)
    RuleSpec("allow-usr-share", "allow", ("fs.read",), (W("/usr/share"), W("/usr/lib/python3"))),
    RuleSpec("allow-scratch", "allow", ("fs.read", "fs.write"), (W("/tmp/scratch"),)),
    RuleSpec("allow-resolve-corp", "allow", ("net.resolve",), (Atom("host", "*.corp.example"),)),
    RuleSpec("allow-pypi", "allow", ("net.connect",),
             (Atom("host", "pypi.org"), Atom("host", "files.pythonhosted.org")), 443),
    RuleSpec("allow-locale-env", "allow", ("env.read",),
             (Atom("env", "LANG"), Atom("env", "LC_*"), Atom("env", "TZ"), Atom("env", "HOME"),
              Atom("env", "PATH"))),
    RuleSpec("allow-loopback", "allow", ("net.connect", "net.resolve"), (Atom("cidr", "127.0.0.0/8"),),
             None, ("plug-0*",)),
    RuleSpec("allow-docs", "allow", ("fs.read",), (Atom("glob", "/**/*.md"),)),
    RuleSpec("allow-public-data", "allow", ("fs.read",), (W("/data/public"),)),
    RuleSpec("allow-etc-hosts", "allow", ("fs.read",), (Atom("eq", "/etc/hosts"), Atom("eq", "/etc/resolv.conf"))),
    RuleSpec("allow-ci-env", "allow", ("env.read",), (Atom("env", "CI_*"),), None, ("plug-1*",)),
)


def atom_cel(a: Atom) -> str:
    lit = json.dumps(a.arg)   # plain ASCII strings without backslashes: a valid CEL literal
    return {
        "within": f"within(request.path, {lit})",
        "eq": f"request.path == {lit}",
        "glob": f"glob(request.path, {lit})",
        "host": f"host_matches(request.host, {lit})",
        "cidr": f"in_cidr(request.host, {lit})",
        "env": f"env_matches(request.name, {lit})",
        "true": "true",
    }[a.kind]


def rule_cel(r: RuleSpec) -> str:
    cond = " || ".join(atom_cel(a) for a in r.atoms if a.kind != "true") or "true"
    if r.port is not None:
        cond = f"request.port == {r.port}" if cond == "true" else f"({cond}) && request.port == {r.port}"
    return cond


def policy_document(rules=ORG_RULES) -> dict:
    return {"apiVersion": "promptline/v1", "kind": "Policy", "layer": "org",
            "description": "Benchmark org policy (docs/design.md §12)",
            "rules": [{"id": r.id, "effect": r.effect, "actions": list(r.actions),
                       "plugins": list(r.plugins), "when": rule_cel(r)} for r in rules]}


# -- plugins ---------------------------------------------------------------------------------

PROJECTS = ("atlas", "borealis", "cobalt", "delta", "ember", "fjord", "garnet", "helix")


def make_plugins(rng: random.Random) -> list[Plugin]:
    plugins = []
    for pid in PLUGIN_IDS:
        p = Plugin(pid)
        k = rng.randint(2, 6)
        proj = rng.choice(PROJECTS)
        n = int(pid[-2:])
        makers = [
            lambda: p.fs_read.append(rng.choice([f"/data/{proj}", f"{HOME}/notes", f"/srv/shared/{proj}",
                                                 f"/var/log/app{n % 4}", f"{HOME}/projects/{proj}"])),
            lambda: p.fs_write.append(rng.choice([f"/tmp/{pid}", f"{HOME}/projects/{proj}/out",
                                                  f"/var/tmp/{pid}", f"/data/{proj}/cache"])),
            lambda: p.network.append(rng.choice([f"api{n % 5}.example.com:443", "*.corp.example",
                                                 f"10.{n}.0.0/16", f"db{n % 3}.prod.internal:5432",
                                                 f"cache{n % 3}.internal:6379", "*.thirdparty.io"])),
            lambda: p.environment.append(rng.choice([f"APP{n}_HOME", f"PLUG{n}_*", "DATABASE_URL",
                                                     "AWS_REGION", "GITHUB_TOKEN", "EDITOR"])),
        ]
        tries = 0
        while p.n_caps < k and tries < 100:
            tries += 1
            rng.choice(makers)()
            for lst in (p.fs_read, p.fs_write, p.network, p.environment):
                lst[:] = list(dict.fromkeys(lst))
        plugins.append(p)
    return plugins


# -- requests --------------------------------------------------------------------------------

FILES = ("README.md", "main.py", "data.csv", "notes.txt", "config.yaml", "report.pdf", "index.html",
         "Makefile", "db.sqlite", "app.log", "schema.sql", "lib.rs")
SECRET_FILES = ("server.key", "cert.pem", ".env")

GRANTED = 0.70   # share of requests drawn from a plugin's own capabilities

Req = tuple   # (action, plugin, path, host, port, name)


def _file(rng: random.Random, base: str) -> str:
    depth = rng.randint(0, 2)
    parts = [base] + [rng.choice(("src", "docs", "tmp", "v1", "v2", "sub", "a", "b")) for _ in range(depth)]
    r = rng.random()
    leaf = rng.choice(SECRET_FILES) if r < 0.04 else rng.choice(FILES) if r < 0.8 else f"f{rng.randint(0, 999)}.txt"
    return "/".join(parts) + "/" + leaf


def _from_grant(rng: random.Random, p: Plugin) -> Req | None:
    kinds = [k for k in ("r", "w", "n", "e") if getattr(p, {"r": "fs_read", "w": "fs_write", "n": "network",
                                                               "e": "environment"}[k])]
    k = rng.choice(kinds)
    if k == "r":
        return ("fs.read", p.id, _file(rng, rng.choice(p.fs_read)), "", 0, "")
    if k == "w":
        return ("fs.write", p.id, _file(rng, rng.choice(p.fs_write)), "", 0, "")
    if k == "e":
        pat = rng.choice(p.environment)
        name = pat.replace("*", rng.choice(("DIR", "MODE", "LEVEL", "X")))
        return ("env.read", p.id, "", "", 0, name)
    entry = rng.choice(p.network)
    host, port = _split_net(entry)
    if "/" in host:
        base = host.split("/")[0].rsplit(".", 2)[0]
        host = f"{base}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    elif host.startswith("*."):
        host = rng.choice(("api", "www", "git", "ci", "a.b")) + host[1:]
    if rng.random() < 0.5:
        return ("net.resolve", p.id, "", host, 0, "")
    return ("net.connect", p.id, "", host, port or rng.choice((443, 80, 8080)), "")


def _org_target(rng: random.Random, pid: str) -> Req:
    c = rng.randrange(14)
    if c == 0:
        return ("fs.read", pid, _file(rng, rng.choice((f"{HOME}/.ssh", f"{HOME}/.aws", f"{HOME}/.kube",
                                                      f"{HOME}/.config/gcloud"))), "", 0, "")
    if c == 1:
        return (rng.choice(("fs.read", "fs.write")), pid,
                rng.choice(("/etc/shadow", "/etc/sudoers", "/etc/ssh/sshd_config", "/etc/hosts",
                            "/etc/resolv.conf", "/etc/passwd", f"{HOME}/.bash_history")), "", 0, "")
    if c == 2:
        return ("net.connect", pid, "", rng.choice(("169.254.169.254", "metadata.google.internal",
                                                    "192.168.1.10", "127.0.0.1", "pypi.org",
                                                    "files.pythonhosted.org", "x.telemetry.example",
                                                    "stats.example.net", "mail.example.com",
                                                    "db1.prod.internal", "git.thirdparty.io")),
                rng.choice((443, 25, 22, 5432, 80)), "")
    if c == 3:
        return ("net.resolve", pid, "", rng.choice(("169.254.169.254", "metadata.google.internal",
                                                    "git.corp.example", "127.0.0.1", "x.telemetry.example",
                                                    "unknown.example.org")), 0, "")
    if c == 4:
        return ("env.read", pid, "", "", 0, rng.choice(("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "DB_PASSWORD",
                                                        "APP_SECRET", "DATABASE_URL", "REDIS_DSN", "LANG",
                                                        "LC_ALL", "TZ", "HOME", "PATH", "CI_JOB_ID", "SHELL")))
    if c == 5:
        return ("fs.write", pid, _file(rng, rng.choice((f"{HOME}/Documents", "/srv/shared/x", "/usr/local/bin",
                                                       "/var/lib/app", "/tmp/scratch"))), "", 0, "")
    if c == 6:
        return ("fs.read", pid, _file(rng, rng.choice(("/usr/share/doc", "/usr/lib/python3/site", "/data/public",
                                                      "/tmp/scratch", "/var/log/syslog.d",
                                                      "/srv/shared/secrets"))), "", 0, "")
    if c == 7:
        return ("fs.read", pid, _file(rng, rng.choice(("/opt/stuff", "/home/dev/Downloads", "/mnt/usb"))), "", 0, "")
    if c == 8:
        return ("env.read", pid, "", "", 0, f"RANDOM_{rng.randint(0, 300)}")
    if c == 9:
        return ("net.connect", pid, "", f"host{rng.randint(0, 300)}.example.org", rng.choice((443, 80)), "")
    if c == 10:
        return ("net.connect", pid, "", f"10.{rng.randint(0, 25)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                rng.choice((443, 5432, 6379)), "")
    if c == 11:
        return ("fs.write", pid, _file(rng, "/etc/app"), "", 0, "")
    if c == 12:
        return ("net.resolve", pid, "", f"svc{rng.randint(0, 300)}.corp.example", 0, "")
    return ("fs.read", pid, _file(rng, f"/data/{rng.choice(PROJECTS)}"), "", 0, "")


@dataclass
class Workload:
    seed: int
    plugins: list[Plugin]
    rules: tuple[RuleSpec, ...]
    distinct: list[Req]          # each distinct request once
    stream: list[int]            # indexes into ``distinct``; len == n_requests

    def all_rules(self) -> list[RuleSpec]:
        """Org rules then manifest grants (what the non-CEL encodings implement)."""
        out = list(self.rules)
        for p in self.plugins:
            out.extend(p.grant_rules())
        return out


def make_workload(n_requests: int = 100_000, seed: int = SEED, distinct_fraction: float = 0.2) -> Workload:
    rng = random.Random(seed)
    plugins = make_plugins(rng)
    n_distinct = max(1, int(n_requests * distinct_fraction))
    seen: dict[Req, int] = {}
    distinct: list[Req] = []
    guard = 0
    while len(distinct) < n_distinct and guard < n_distinct * 50:
        guard += 1
        p = rng.choice(plugins)
        req = _from_grant(rng, p) if rng.random() < GRANTED else _org_target(rng, p.id)
        if req is None or req in seen:
            continue
        seen[req] = len(distinct)
        distinct.append(req)
    # every distinct request at least once, the rest drawn with a skew (hot requests repeat)
    weights = [1.0 / (i + 1) ** 0.6 for i in range(len(distinct))]
    order = list(range(len(distinct)))
    rng.shuffle(order)   # hotness independent of generation order
    extra = rng.choices(order, weights=weights, k=n_requests - len(distinct))
    stream = list(range(len(distinct))) + extra
    rng.shuffle(stream)
    return Workload(seed, plugins, ORG_RULES, distinct, stream)


def write_files(w: Workload, directory: str) -> tuple[str, list[str]]:
    """Write the org policy and one plugin.yaml per plugin; return their paths."""
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    policy_path = os.path.join(directory, "org.yaml")
    with open(policy_path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(policy_document(w.rules), fh, sort_keys=False, width=1000)
    os.chmod(policy_path, 0o644)
    manifests = []
    for p in w.plugins:
        d = os.path.join(directory, "plugins", p.id)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "plugin.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(p.manifest(), fh, sort_keys=False)
        manifests.append(path)
    return policy_path, manifests

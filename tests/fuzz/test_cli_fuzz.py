"""A hypothesis fuzzer over the CLI's arguments and every file format it reads: policy
files, plugin.yaml, plugin.sig, index.json, audit logs, approvals, grants and archives.
Each run must end with a clean exit (0, 1 or 2: an `error:` line or click's usage error,
never a traceback), in bounded time, with no raw control or bidi character from the input
echoed to the terminal. Runs in process (click's CliRunner) against real files; `tool call`
starts a real child process."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import unicodedata

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptline.cli import main

BOUND_S = 30.0    # not a speed target: slower than this is a hang
EXAMPLES = int(os.environ.get("PROMPTLINE_FUZZ_EXAMPLES", "15"))   # per command and per file format
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

HOSTILE = [
    "a" * 100_000, "a\x00b", "demo\x00", "\u202eevil\u202c", "\u2066x\u2069", "\x1b[31mred\x1b[0m", "a\rb", "a\nb",
    "-1", "0", "99999999999999999999999999", "1" * 5000, "1e999", "nan", "inf", "-", "--", "",
    "/dev/zero", "/proc/self/mem", "/", "..", "../../../etc/passwd", "\udcff\udcfe", "x" * 300, "./",
    "demo", "demo.echo", "demo.nope", "notes.search", "{}", "[]", "2026-13-45", "@", "a@b", "ID:", "%s%n",
]
TEXT = st.one_of(st.sampled_from(HOSTILE),
                 st.text(alphabet=st.sampled_from("ab.-_/@:{}[]\"' 0123456789\x00\x01\x1b\u202e\u2066\u200f\x7f\udcff"),
                         max_size=40))
# raw control (except newline and tab) and bidi characters: what must never reach a terminal unescaped
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ud800-\udfff]")


def _nested(n: int, open_: str = "[", close: str = "]") -> str:
    return open_ * n + close * n


DOCS = st.one_of(
    st.sampled_from([
        _nested(100_000), _nested(100_000, "{\"a\":", "}"), _nested(600), "[" * 100_000,
        "x: &x [*x]\n", "a: &a [*a, *a]\nb: *a\n", "- " * 5000 + "x\n", "  " * 3000 + "- x\n",
        "id: demo\nversion: " + "9" * 5000 + "\n", "id: \"x\u202e\x1b[2J\"\nversion: 1.0.0\n",
        "apiVersion: promptline/v1\nkind: Policy\nlayer: org\nrules:\n  - id: \"\u202e\"\n    effect: deny\n",
        "{\"format\": \"promptline-index/v1\", \"plugins\": {\"x\": {\"versions\": {\"1.0.0\": " + _nested(3000) + "}}}}",
        '{"v":1,"seq":1,"prev":"' + "0" * 64 + '","time":"\udcff","kind":"decision"}\n',
        '{"v": 1e999999, "seq": ' + "9" * 5000 + "}\n", "\xff\xfe\x00", "", "\n" * 10000,
        "lazy: &a [" + ", ".join(["*a"] * 50) + "]\n",
    ]),
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    plugins = base / "plugins"
    d = plugins / "demo"
    d.mkdir(parents=True)
    (d / "plugin.yaml").write_text('id: demo\nversion: 1.0.0\nentry: {python: "demo_mod:Demo"}\n')
    (d / "demo_mod.py").write_text(
        "from promptline import Tool, ToolPlugin, ToolResult\n"
        "class Echo(Tool):\n    name = 'echo'\n    description = 'echo'\n"
        "    def execute(self, args):\n        return ToolResult.success('ok')\n"
        "class Demo(ToolPlugin):\n    def tools(self):\n        return [Echo()]\n")
    policy = base / "policy.yaml"
    policy.write_text("apiVersion: promptline/v1\nkind: Policy\nlayer: org\n")
    os.chmod(policy, 0o644)
    index = base / "index"
    index.mkdir()
    (index / "index.json").write_text(json.dumps({"format": "promptline-index/v1", "plugins": {}}))
    (base / "empty").mkdir()
    env = {"PROMPTLINE_PLUGIN_PATH": str(plugins), "PROMPTLINE_POLICY": str(policy),
           "PROMPTLINE_APPROVALS": str(base / "approvals.yaml"), "PROMPTLINE_AUDIT_LOG": str(base / "audit.jsonl"),
           "PROMPTLINE_INDEX": str(index), "PROMPTLINE_CONFIG": str(base / "config.yaml"),
           "PROMPTLINE_GRANTS": str(base / "grants.yaml"), "HOME": str(base), "GIT_TERMINAL_PROMPT": "0",
           "PATH": os.path.dirname(shutil.which("python") or "/usr/bin/python")}
    runner = CliRunner()
    assert runner.invoke(main, ["plugin", "approve", "demo", "--yes"], env=env).exit_code == 0
    return base, env


def run(home, args: list[str]):
    base, env = home
    start = time.monotonic()
    result = CliRunner().invoke(main, args, env=env)
    took = time.monotonic() - start
    if os.environ.get("PROMPTLINE_FUZZ_LOG"):
        with open(os.environ["PROMPTLINE_FUZZ_LOG"], "a") as fh:
            fh.write(f"{took:7.2f} {[a[:30] for a in args]!r}\n")
    out = result.output
    shown = [a[:60] for a in args]
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        (shown, repr(result.exception), out[-500:])
    assert result.exit_code in (0, 1, 2), (shown, result.exit_code, out[-500:])
    assert "Traceback" not in out, (shown, out[-2000:])
    assert took < BOUND_S, (shown, took)
    raw = RAW.search(out)
    assert raw is None, (shown, f"raw {unicodedata.name(raw.group(), hex(ord(raw.group())))} in output",
                         out[max(0, raw.start() - 100):raw.start() + 50])
    return result


ARG_COMMANDS = [
    ["plugin", "info", "{x}"], ["plugin", "approve", "{x}", "--yes"], ["plugin", "install", "{x}"],
    ["plugin", "remove", "{x}"], ["plugin", "update", "{x}"], ["plugin", "search", "{x}"],
    ["plugin", "verify", "{x}"], ["plugin", "stats", "{x}"], ["plugin", "list", "--plugins", "{x}"],
    ["plugin", "new", "{x}", "--dir", "{base}/new"], ["tool", "call", "{x}"], ["tool", "call", "demo.echo", "{x}"],
    ["audit", "show", "--since", "{x}"], ["audit", "show", "--limit", "{x}"], ["audit", "tail", "-n", "{x}"],
    ["audit", "show", "--plugin", "{x}"], ["audit", "verify", "--log", "{x}"], ["audit", "stats", "--log", "{x}"],
    ["policy", "check", "{x}"], ["policy", "show", "--policy", "{x}"],
    ["policy", "explain", "--plugin", "{x}", "--action", "fs.read", "--path", "{x}"],
    ["grants", "list"], ["keys", "list"],
]


@pytest.mark.parametrize("command", ARG_COMMANDS, ids=lambda c: "-".join(p for p in c if p[0] not in "{-"))
@FUZZ
@given(value=TEXT)
def test_cli_arguments(home, command, value):
    base = str(home[0])
    args = [value if part == "{x}" else part.replace("{base}", base) for part in command]
    run(home, args)


# (file name, how it is placed, command): every file format the CLI reads
FILE_COMMANDS = {
    "policy": ("policy.yaml", ["policy", "check", "{f}"]),
    "policy-show": ("policy.yaml", ["policy", "show", "--policy", "{f}"]),
    "policy-test": ("tests.yaml", ["policy", "test", "{f}"]),
    "manifest": ("plugin/plugin.yaml", ["plugin", "info", "{d}"]),
    "manifest-list": ("plugins/x/plugin.yaml", ["plugin", "list", "--plugins", "{d}/.."]),
    "signature": ("plugin/plugin.sig", ["plugin", "verify", "{d}"]),
    "index": ("index/index.json", ["plugin", "search", "--index", "{d}"]),
    "index-install": ("index/index.json", ["plugin", "install", "demo2", "--index", "{d}"]),
    "audit-verify": ("audit.jsonl", ["audit", "verify", "--log", "{f}"]),
    "audit-show": ("audit.jsonl", ["audit", "show", "--log", "{f}"]),
    "audit-stats": ("audit.jsonl", ["audit", "stats", "--log", "{f}"]),
    "approvals": ("approvals.yaml", ["plugin", "list", "--approvals", "{f}"]),
    "archive": ("x-0.1.0.tar.gz", ["plugin", "install", "{f}"]),
    "grants": ("grants.yaml", ["grants", "list", "--grants", "{f}"]),
    "bundle": ("org.bundle", ["policy", "bundle", "verify", "{f}"]),
    "policy-explain": ("policy.yaml", ["policy", "explain", "--policy", "{f}", "--plugin", "demo", "--action",
                                       "fs.read", "--path", "/tmp/x"]),
}


@pytest.mark.parametrize("kind", sorted(FILE_COMMANDS))
@FUZZ
@given(content=DOCS, n=st.integers(0, 1 << 30))
def test_file_formats(home, kind, content, n):
    base = home[0]
    name, command = FILE_COMMANDS[kind]
    work = base / "files" / str(n)
    path = work / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "manifest" or kind == "signature":
        (path.parent / "plugin.yaml").write_text('id: fz\nversion: 1.0.0\nentry: {python: "m:P"}\n')
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    os.chmod(path, 0o644)
    args = [p.replace("{f}", str(path)).replace("{d}", str(path.parent)) for p in command]
    try:
        run(home, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


NAMED = ["a" * 100_000, "demo\x00", "\u202eevil", "x" * 5000]


@pytest.mark.parametrize("value", NAMED, ids=["100k-chars", "nul", "bidi", "5000-chars"])
@pytest.mark.parametrize("command", [c for c in ARG_COMMANDS if "{x}" in c],
                         ids=lambda c: "-".join(p for p in c if p[0] not in "{-"))
def test_named_hostile_arguments(home, command, value):
    """The inputs the outside run found, each through every command taking an argument."""
    base = str(home[0])
    run(home, [value if part == "{x}" else part.replace("{base}", base) for part in command])


def test_a_deep_index_and_deep_tool_arguments_get_one_clear_error(home):
    base = home[0]
    deep = base / "deep-index"
    deep.mkdir(exist_ok=True)
    (deep / "index.json").write_text(_nested(100_000))
    for args in (["plugin", "search", "--index", str(deep)], ["plugin", "install", "demo2", "--index", str(deep)]):
        r = run(home, args)
        assert r.exit_code == 1 and "nested deeper than" in r.output, r.output
    ok = run(home, ["tool", "call", "demo.echo", json.dumps({"a": json.loads(_nested(50))})])
    assert ok.exit_code == 0 and "ok" in ok.output, "an honest nested argument is passed on"
    deep_args = run(home, ["tool", "call", "demo.echo", '{"a": ' + _nested(500) + "}"])
    assert deep_args.exit_code == 1 and "nest deeper than 60 levels" in deep_args.output, deep_args.output


def test_manifest_text_is_escaped_in_error_lines(home):
    base = home[0]
    evil = base / "evil-plugins" / "evil"
    evil.mkdir(parents=True, exist_ok=True)
    # YAML decodes the escapes: the manifest's values hold a real RLO and ESC
    (evil / "plugin.yaml").write_text('id: "ev\\u202eil\\e[2J"\nversion: 1.0.0\nentry: {python: "m:P"}\n')
    r = run(home, ["plugin", "list", "--plugins", str(evil.parent)])
    assert "\\u202e" in r.output or "\\x1b" in r.output, r.output   # shown, escaped
    r = run(home, ["plugin", "info", str(evil)])
    assert r.exit_code == 1 and "evil" in r.output

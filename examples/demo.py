"""The main job: plugins loaded and called under the shipped default policy.

Runs the example plugins (a Python plugin in the process sandbox, a WebAssembly plugin)
under policies/default.yaml, makes allowed and refused calls, then shows the audit trail
and verifies its hash chain. Everything it writes goes to a fresh temporary directory.

    python examples/demo.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEMO_DATA = "/tmp/promptline-demo"     # the directory the example manifests grant


PROJECT_FILES = {   # what project-search finds (tests/examples checks these lines)
    "README.md": "# Demo project\nThe parser lives in src/parser.py.\nTODO: write the docs\n",
    "src/parser.py": 'def parse(text):\n    """Parse TODO lines."""\n'
                     '    return [l for l in text.splitlines() if l.startswith("TODO")]\n',
    "src/app.py": "def main():\n    return 42  # todo: handle errors\n",
}


def make_demo_data() -> None:
    """The directories the example manifests grant, with a few files to find."""
    os.makedirs(f"{DEMO_DATA}/notes", exist_ok=True)
    with open(f"{DEMO_DATA}/notes/todo.md", "w") as fh:
        fh.write("# todo\n- buy milk\n- review the plugin policy\n")
    os.makedirs(f"{DEMO_DATA}/project/src", exist_ok=True)
    for rel, text in PROJECT_FILES.items():
        with open(f"{DEMO_DATA}/project/{rel}", "w") as fh:
            fh.write(text)


def main() -> int:
    from promptline.enforcer.audit import AuditLog
    from promptline.loaders import ApprovalStore, PluginManager

    make_demo_data()
    state = tempfile.mkdtemp(prefix="promptline-demo-state-")
    log_path = os.path.join(state, "audit.jsonl")
    print(f"policy:    {ROOT}/policies/default.yaml")
    print(f"plugins:   {HERE}")
    print(f"audit log: {log_path}\n")

    def approve(status) -> bool:
        print("approving (demo):", status.explain().splitlines()[0].replace("needs-approval", "asks for"))
        for line in status.explain().splitlines()[1:]:
            if line.strip().startswith("+"):
                print("   ", line.strip())
        return True

    pm = PluginManager(policy_files=[f"{ROOT}/policies/default.yaml"], search_path=[HERE],
                       config_path=False, entry_points=False, audit_log=AuditLog(log_path),
                       approvals=ApprovalStore(os.path.join(state, "approvals.yaml")),
                       approve_callback=approve, grants=os.path.join(state, "grants.yaml"))
    with pm:
        report = pm.load_all()
        for pid in report.loaded:
            print(f"loaded {pid} (sandbox: {pm.policy_set.plugins[pid].sandbox})")
        for pid, why in report.refused:
            print(f"NOT loaded {pid}: {why}")
        print()
        calls = [
            ("notes.search", {"query": "milk"}, "allowed: reads its declared notes directory"),
            ("notes.read", {"path": f"{DEMO_DATA}/notes/todo.md"}, "allowed: inside the grant"),
            ("notes.read", {"path": os.path.expanduser("~/.ssh/id_rsa")}, "refused: rule no-ssh-keys"),
            ("notes.read", {"path": "/etc/passwd"}, "refused: not declared (default deny)"),
            ("notes.search", {"query": ""}, "refused: argument fails the tool's JSON Schema"),
            ("wasm-wordcount.count", {"text": "one two three"}, "allowed: pure computation in wasm"),
            ("wasm-wordcount.count_file", {"path": f"{DEMO_DATA}/notes/todo.md"}, "allowed: read-only preopen"),
            ("wasm-wordcount.count_file", {"path": "/etc/passwd"}, "refused: outside every preopen"),
            ("calculator.calculate", {"expression": "2 ** 10 / 4"}, "allowed: arithmetic, no eval"),
            ("project-search.read", {"path": "../notes/todo.md"}, "refused: outside its project directory"),
        ]
        for name, args, expect in calls:
            result = pm.call_tool(name, args)
            mark = "allowed" if result.ok else "refused"
            text = (result.content or "").replace("\n", " | ")
            print(f"[{mark}] {name} {json.dumps(args)}\n          expected {expect}\n          -> {text[:200]}")
    print("\n== audit trail (promptline audit show) ==")
    cli = [sys.executable, "-m", "promptline", "audit"]
    subprocess.run(cli + ["show", "--log", log_path], check=False)
    print("\n== promptline audit verify ==")
    return subprocess.run(cli + ["verify", "--log", log_path], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())

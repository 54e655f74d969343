"""subprocess running git."""

import subprocess
from pathlib import Path

from promptline import Tool, ToolPlugin, ToolResult


def git(*args, cwd=None):
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise RuntimeError(f"git {args[0]} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


class Status(Tool):
    name = "status"
    description = "git init a repository in the workspace (or at `where`), commit a file, report"
    parameters = {"type": "object", "properties": {"where": {"type": "string"}}}

    def __init__(self, root: Path):
        self.root = root

    def execute(self, args):
        if args.get("where"):   # git makes the directory itself
            repo = Path(args["where"])
        else:
            repo = self.root / "out" / "repo"
            repo.mkdir(parents=True, exist_ok=True)
        git("init", "-q", str(repo))
        (repo / "README").write_text("hello\n")
        git("add", "README", cwd=repo)
        git("-c", "user.name=corpus", "-c", "user.email=corpus@example.com", "commit", "-q", "-m", "first", cwd=repo)
        log = git("log", "--format=%s", cwd=repo)
        version = git("--version")
        return ToolResult.success(log, data={"log": log, "version": version})


class GitPlugin(ToolPlugin):
    def initialize(self, config):
        self.root = Path(config["workspace"])

    def tools(self):
        return [Status(self.root)]

"""`plugin install` puts plugins in the user's plugin directory (the one the loader searches),
or `--into DIR`; never into a directory only because it is on $PROMPTLINE_PLUGIN_PATH; and
`plugin remove` leaves nothing behind (no record, lock or staging files)."""

from __future__ import annotations

import os
from pathlib import Path

from cli_helpers import promptline


def _tree(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out


def _plugin(home: Path, name: str) -> Path:
    r = promptline(home, "plugin", "new", name)
    assert r.returncode == 0, r.stderr
    return home / name


def test_install_goes_to_the_user_dir_not_to_the_search_path_and_remove_leaves_nothing(tmp_path):
    home = tmp_path
    examples = home / "checkout" / "examples"           # a repository's examples/ on the search path
    _plugin(home, "sample")
    examples.mkdir(parents=True)
    os.rename(home / "sample", examples / "sample")
    before = _tree(examples)
    _plugin(home, "hello-tools")
    user_dir = home / ".config" / "promptline" / "plugins"

    r = promptline(home, "plugin", "install", "./hello-tools/", "--yes", PROMPTLINE_PLUGIN_PATH=str(examples))
    assert r.returncode == 0, r.stderr
    assert f"installed `hello-tools` 0.1.0 in {user_dir / 'hello-tools'}" in r.stdout
    assert "is not on the plugin search path" in r.stderr and str(user_dir) in r.stderr   # says how to find it
    assert _tree(examples) == before                    # nothing written into examples/
    assert (user_dir / "hello-tools" / "plugin.yaml").is_file()
    assert (user_dir / ".promptline-registry.json").is_file()

    r = promptline(home, "plugin", "remove", "hello-tools", PROMPTLINE_PLUGIN_PATH=str(examples))
    assert r.returncode == 0, r.stderr
    assert f"removed `hello-tools` 0.1.0 from {user_dir}" in r.stdout
    assert os.listdir(user_dir) == []                   # no record, no lock file, no staging dir
    assert _tree(examples) == before


def test_without_plugin_path_the_loader_finds_what_install_put_there(tmp_path):
    home = tmp_path
    _plugin(home, "hello-tools")
    r = promptline(home, "plugin", "install", "./hello-tools/", "--yes")
    assert r.returncode == 0, r.stderr
    assert "not on the plugin search path" not in r.stderr
    listed = promptline(home, "plugin", "list", "--json")
    import json
    plugins = json.loads(listed.stdout)["plugins"]
    assert [(p["id"], p["root"]) for p in plugins] == \
        [("hello-tools", str(home / ".config" / "promptline" / "plugins" / "hello-tools"))]
    assert plugins[0]["approval"].startswith("approved")
    assert promptline(home, "plugin", "remove", "hello-tools").returncode == 0
    assert json.loads(promptline(home, "plugin", "list", "--json").stdout)["plugins"] == []
    assert os.listdir(home / ".config" / "promptline" / "plugins") == []


def test_into_dir_installs_there_and_remove_into_cleans_it(tmp_path):
    home = tmp_path
    _plugin(home, "hello-tools")
    target = home / "team-plugins"
    r = promptline(home, "plugin", "install", "./hello-tools/", "--yes", "--into", str(target))
    assert r.returncode == 0, r.stderr
    assert (target / "hello-tools" / "plugin.yaml").is_file()
    assert not (home / ".config" / "promptline" / "plugins").exists()
    # the same id is not "installed" in the user dir
    assert promptline(home, "plugin", "remove", "hello-tools").returncode == 1
    r = promptline(home, "plugin", "remove", "hello-tools", "--into", str(target))
    assert r.returncode == 0, r.stderr
    assert os.listdir(target) == []


def test_the_directory_lock_excludes_another_installer(tmp_path, monkeypatch):
    """The commit lock is an flock on the plugin directory itself: a second installer waits
    (and gives up with a clear error) while another holds it; once released it proceeds."""
    import fcntl
    import subprocess
    import sys

    from cli_helpers import user_env

    home = tmp_path
    _plugin(home, "hello-tools")
    user_dir = home / ".config" / "promptline" / "plugins"
    user_dir.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl, os, sys, time\n"
                               f"fd = os.open({str(user_dir)!r}, os.O_RDONLY)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = ("import sys; from promptline.loaders._registry import _install; _install.LOCK_TIMEOUT = 0.3; "
                "from promptline.cli import main; sys.argv = ['promptline', 'plugin', 'install', './hello-tools/', "
                "'--yes']; main()")
        r = subprocess.run([sys.executable, "-c", code], cwd=home, env=user_env(home), capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1 and "is locked by another promptline" in r.stderr, r.stderr
        assert os.listdir(user_dir) == []            # nothing half-installed
    finally:
        holder.kill()
        holder.wait()
    fd = os.open(user_dir, os.O_RDONLY)               # control: released, so it installs
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)
    r = promptline(home, "plugin", "install", "./hello-tools/", "--yes")
    assert r.returncode == 0, r.stderr

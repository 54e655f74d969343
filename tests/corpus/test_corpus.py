"""Realistic plugins, each using a different slice of the standard library, through the
real PluginManager in `none` (trusted, in process) and `process` (sandboxed child).

Granted: the call works and returns the right answer. The same plugin with that one grant
removed: the call is refused, and the deny is in the audit log with the action that needed
the grant. The table (plugin x level x granted/refused) is printed by
``python -m pytest tests/corpus -rA -q``.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from corpus_helpers import TOKEN


def _load_ok(corpus, pid):
    assert pid in corpus.report.loaded, corpus.report.refused


def refused(corpus, result, pid, action, *, swallowed=False):
    """The call failed, and the audit log has this plugin's deny of ``action``. With
    ``swallowed`` the stdlib itself catches the PermissionError (``Path.glob`` skips a
    directory it may not list): then the call returns, but with nothing it was refused."""
    if swallowed:
        assert not result.ok or not result.data, result.content
    else:
        assert not result.ok, result.content
    actions = {r.get("action") for r in corpus.denies(pid)}
    assert action in actions, (actions, result.content)


def test_sqlite_in_a_granted_dir(corpus):
    _load_ok(corpus, "sqlite-notes")
    r = corpus.call("sqlite-notes.add_and_list", {"text": "first"})
    if corpus.granted:
        assert r.ok, r.content
        r = corpus.call("sqlite-notes.add_and_list", {"text": "second"})
        assert r.ok and r.data == ["first", "second"], r.content
        assert (corpus.work / "db" / "notes.sqlite").exists()
    else:
        refused(corpus, r, "sqlite-notes", "fs.write")


def test_urllib_and_http_client_against_a_local_server(corpus):
    _load_ok(corpus, "http-fetch")
    r = corpus.call("http-fetch.fetch", {"url": corpus.url})
    if corpus.granted:
        assert r.ok, r.content
        assert r.content == "/hello /hello" and r.data[1]["query"] == "again=1"
    else:
        refused(corpus, r, "http-fetch", "net.connect")


def test_json_csv_xml_toml(corpus):
    _load_ok(corpus, "data-formats")
    r = corpus.call("data-formats.summary")
    if corpus.granted:
        assert r.ok, r.content
        assert r.data == {"json": 3, "csv": 4, "xml": 5, "toml": 6}
    else:
        refused(corpus, r, "data-formats", "fs.read")


def test_zipfile_tarfile_gzip(corpus):
    _load_ok(corpus, "archives")
    r = corpus.call("archives.pack")
    if corpus.granted:
        assert r.ok, r.content
        zipped, tarred, same = r.data
        assert len(zipped) == 5 and len(tarred) == 5 and same is True
    else:
        refused(corpus, r, "archives", "fs.write")


def test_pathlib_and_shutil_copy_move_rmtree(corpus):
    _load_ok(corpus, "file-organizer")
    r = corpus.call("file-organizer.organize")
    if corpus.granted:
        assert r.ok, r.content
        assert r.data == ["json/renamed.json", "tables/items.csv", "toml/items.toml", "txt/titles.txt",
                          "xml/items.xml"]
        r = corpus.call("file-organizer.organize")      # again: rmtree of the previous result
        assert r.ok, r.content
    else:
        refused(corpus, r, "file-organizer", "fs.write")


def test_tempfile_in_the_workspace(corpus):
    _load_ok(corpus, "scratch")
    r = corpus.call("scratch.scratch")
    if corpus.granted:
        assert r.ok, r.content
        assert r.data == ["alpha", "beta", "gamma", "delta-rolled-over"]
    else:
        refused(corpus, r, "scratch", "fs.write")
    if corpus.level == "process":
        # the child's own TMPDIR needs no grant
        r = corpus.call("scratch.scratch", {"default_tmp": True})
        assert r.ok, r.content


def test_subprocess_running_git(corpus):
    # a root host's child keeps real uid = effective uid (its process count is a pids cgroup),
    # so git's access(2) checks agree with Landlock: the granted work dir is usable
    if corpus.level == "process" and not corpus.granted:
        # the child has not imported subprocess: the plugin's own `import subprocess` loads
        # _posixsubprocess (fork_exec has no audit event), a door only a process grant opens;
        # that import is at the plugin's import, so the child cannot start: load_all says so
        why = dict(corpus.report.refused).get("git-info", "")
        assert "did not start" in why and "native" in why, corpus.report
        assert any(d.get("resource") == "_posixsubprocess" for d in corpus.denies("git-info"))
        return
    if corpus.level == "process" and corpus.granted and os.getuid() == 0:
        from promptline.loaders._process import _pids
        if _pids._own_pids_dir() is None:   # documented fallback: the unprivileged real uid
            pytest.xfail("no writable pids controller on this root host: the child gets an "
                         "unprivileged real uid and git's access(2) check fails (README, sandbox table)")
    _load_ok(corpus, "git-info")
    r = corpus.call("git-info.status")
    if corpus.granted:
        assert r.ok, r.content
        assert r.data["log"] == "first" and r.data["version"].startswith("git version")
        if corpus.level == "process":   # the wall: git itself, outside the grant, is refused
            outside = corpus.work.parent / "outside-repo"
            r = corpus.call("git-info.status", {"where": str(outside)})
            assert not r.ok and "git init failed" in r.content and "denied" in r.content, r.content
            assert not outside.exists()
    else:
        refused(corpus, r, "git-info", "process.exec")


def test_async_tool_with_asyncio(corpus):
    _load_ok(corpus, "async-reader")
    r = corpus.call("async-reader.count_words")
    expected = sum((i % 7 + 1) + (1 if i % 10 == 0 else 0) for i in range(120))
    if corpus.granted:
        assert r.ok, r.content
        assert r.content == str(expected)
    else:
        refused(corpus, r, "async-reader", "fs.read", swallowed=True)
        # the reads themselves run in asyncio.to_thread workers: still this plugin's, refused
        r = corpus.call("async-reader.count_words", {"names": ["t001.txt", "t002.txt"]})
        refused(corpus, r, "async-reader", "fs.read")


def test_thread_pool_doing_the_reads(corpus):
    _load_ok(corpus, "thread-reader")
    r = corpus.call("thread-reader.hash_all")
    if corpus.granted:
        assert r.ok, r.content
        p = corpus.work / "texts" / "t007.txt"
        assert r.data["t007.txt"] == hashlib.sha256(p.read_bytes()).hexdigest()[:12] and len(r.data) == 120
    else:
        refused(corpus, r, "thread-reader", "fs.read", swallowed=True)
        # the reads themselves run in the pool's threads: still this plugin's, refused
        r = corpus.call("thread-reader.hash_all", {"names": ["t001.txt", "t002.txt"]})
        refused(corpus, r, "thread-reader", "fs.read")
        assert any(r.get("resource", "").endswith("t001.txt") for r in corpus.denies("thread-reader"))


def test_logging_to_a_file(corpus):
    _load_ok(corpus, "log-writer")
    r = corpus.call("log-writer.record", {"message": "hello log"})
    if corpus.granted:
        assert r.ok, r.content
        assert r.content == "INFO hello log"
    else:
        refused(corpus, r, "log-writer", "fs.write")


def test_a_granted_environment_variable(corpus):
    _load_ok(corpus, "env-token")
    r = corpus.call("env-token.fingerprint")
    if corpus.granted:
        assert r.ok, r.content
        assert r.content == hashlib.sha256(TOKEN.encode()).hexdigest()[:8]
    elif corpus.level == "none":
        refused(corpus, r, "env-token", "env.read")
    else:
        # the child never receives an ungranted variable (scrubbed environment): it is unset
        assert not r.ok and "CORPUS_TOKEN is not set" in r.content
        assert TOKEN not in json.dumps(r.to_dict())


def test_pure_compute(corpus):
    _load_ok(corpus, "pure-compute")
    # a zone not read before in this process (ZoneInfo caches what it loaded)
    zone = "Europe/Paris" if corpus.granted else f"America/{'Sao_Paulo' if corpus.level == 'none' else 'Lima'}"
    r = corpus.call("pure-compute.crunch", {"values": [1.5, 2.5, 4], "zone": zone})
    if corpus.granted:
        assert r.ok, r.content
        assert r.data["total"] == "8.0" and r.data["median"] == 2.5 and r.data["utc"] == "10:00"
        assert r.data["words"] == ["one", "two", "three"]
    else:   # a deny rule on the baseline (time zone data) wins over it
        refused(corpus, r, "pure-compute", "fs.read")


def test_a_context_plugin_reading_many_files(corpus):
    _load_ok(corpus, "many-files")
    if corpus.granted:
        ctx = dict(corpus.pm.context("needle"))
        assert ctx["many-files"].startswith("12 files mention needle: t000.txt, t010.txt")
    else:
        ctx = dict(corpus.pm.context("needle"))
        assert "many-files" not in ctx
        assert "fs.read" in {r.get("action") for r in corpus.denies("many-files")}


def test_a_prompt_plugin(corpus):
    if corpus.granted:
        _load_ok(corpus, "prompt-library")
        templates = dict(corpus.pm.templates())
        assert sorted(templates) == ["prompt-library.summarize", "prompt-library.translate"]
        assert templates["prompt-library.translate"].render(text="hi", language="French") == \
            "Translate hi into French."
    else:
        names = [n for n, _ in corpus.pm.templates()]
        assert not [n for n in names if n.startswith("prompt-library.")]
        assert "fs.read" in {r.get("action") for r in corpus.denies("prompt-library")}


def test_a_vendored_pure_python_dependency(corpus):
    _load_ok(corpus, "vendored-slug")
    r = corpus.call("vendored-slug.slugs")
    if corpus.granted:
        assert r.ok, r.content
        assert r.data == ["hello-world", "ete-a-paris", "promptline-2-0"]
    else:
        refused(corpus, r, "vendored-slug", "fs.read")


def test_the_standard_library_and_the_plugins_data_dir(corpus):
    _load_ok(corpus, "stdlib-tour")
    r = corpus.call("stdlib-tour.tour")
    if corpus.granted:
        assert r.ok, r.content
        assert r.data["mime"] == "application/json" and r.data["tz"] == "Asia/Tokyo"
        assert r.data["certs"] is True and r.data["rows"] >= 1
    else:   # a deny rule beats the plugin's own data dir
        refused(corpus, r, "stdlib-tour", "fs.write")


@pytest.mark.parametrize("pid", ["sqlite-notes", "stdlib-tour"])
def test_no_false_denies_in_the_granted_runs(corpus, pid):
    """Nothing a granted plugin did was refused along the way (imports, listings, baseline)."""
    if not corpus.granted:
        pytest.skip("only the granted runs")
    denies = [(r.get("action"), r.get("resource")) for r in corpus.denies(pid)]
    assert not denies, denies
    assert os.path.isdir(corpus.pm.data_dir / pid)

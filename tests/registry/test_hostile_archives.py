"""Hostile archives are refused before tarfile parses what costs time or memory: oversized
PAX and GNU long-name headers, header chains, global and size-overriding PAX headers,
sparse entries, gzip FEXTRA, bombs and truncation — through extract_archive and through
`promptline plugin install` (local archive, and an unsigned index entry under a policy that
does not require signatures). The honest controls (PAX long names, gzip FNAME) still install."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time

import hostile_archives as hostile
import pytest
from registry_helpers import snapshot, write_plugin

from promptline.loaders._registry import RegistryError, _archive, build_archive, extract_archive, publish
from promptline.loaders._registry._index import INDEX_FILE

HANG = 20.0   # not a speed target: a refusal slower than this is a hang (quadratic parsing)


def _write(tmp_path, data: bytes, name="a.tar.gz"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("name", sorted(hostile.HOSTILE))
def test_hostile_archive_is_refused_before_tarfile_sees_it(tmp_path, name, monkeypatch):
    seen = []
    real_open = tarfile.open
    monkeypatch.setattr(_archive.tarfile, "open", lambda *a, **k: seen.append(a) or real_open(*a, **k))
    archive = _write(tmp_path, hostile.HOSTILE[name]())
    start = time.monotonic()
    with pytest.raises(RegistryError) as exc:
        extract_archive(archive, tmp_path / "out")
    assert time.monotonic() - start < HANG
    assert exc.value.reason in ("bad-archive", "too-large"), exc.value
    assert not seen, "tarfile never opened the archive"
    assert not (tmp_path / "out").exists()


def test_the_attack_is_real_for_tarfile(tmp_path):
    """Without the pre-scan, tarfile holds a GNU long name whole in memory (16 MiB here, from a
    16 KiB archive); extract_archive refuses it having held one header."""
    import tracemalloc
    data = hostile.gnu_longname_real(16 << 20)
    assert len(data) < 64 << 10
    tracemalloc.start()
    try:
        with pytest.raises((tarfile.TarError, EOFError)):
            with tarfile.open(fileobj=io.BytesIO(data), mode="r|gz") as tar:
                tar.next()
        _, tar_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with pytest.raises(RegistryError, match="GNU long-name header of 16777216 bytes"):
            extract_archive(_write(tmp_path, data), tmp_path / "out")
        _, scan_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tar_peak > 16 << 20, "the attack costs tarfile the whole claimed size"
    assert scan_peak < 1 << 20, scan_peak


def test_honest_archives_with_pax_names_and_gzip_names_still_extract(tmp_path):
    long_name = "pkg/" + "d" * 120 + "/module.py"     # > 100 bytes: tarfile writes a PAX header
    data = build_archive({"plugin.yaml": b"id: x\n", long_name: b"print(1)\n", "caf\u00e9.txt": b"x"})
    root = extract_archive(_write(tmp_path, data), tmp_path / "out")
    assert (root / long_name).read_bytes() == b"print(1)\n"
    raw = gzip.decompress(data)
    named = io.BytesIO()
    with gzip.GzipFile(filename="plugin.tar", mode="wb", fileobj=named, mtime=0) as gz:   # FNAME set
        gz.write(raw)
    assert named.getvalue()[3] & 0x08
    root = extract_archive(_write(tmp_path, named.getvalue(), "b.tar.gz"), tmp_path / "out2")
    assert (root / "plugin.yaml").is_file()


def test_small_pax_chain_is_fine_and_the_limit_is_the_documented_constant(tmp_path):
    data = hostile.pax_chain(_archive.MAX_META_RUN)
    root = extract_archive(_write(tmp_path, data), tmp_path / "out")
    assert (root / "plugin.yaml").is_file()
    with pytest.raises(RegistryError, match="extension headers in a row"):
        extract_archive(_write(tmp_path, hostile.pax_chain(_archive.MAX_META_RUN + 1), "b.tar.gz"), tmp_path / "o2")
    ok = hostile.pax_real(_archive.MAX_META_BYTES - 200)
    extract_archive(_write(tmp_path, ok, "c.tar.gz"), tmp_path / "o3")


def test_decompressed_total_and_time_budgets(tmp_path, monkeypatch):
    monkeypatch.setattr(_archive, "MAX_TOTAL_BYTES", 1 << 20)
    monkeypatch.setattr(_archive, "_SCAN_SLACK", 0)
    with pytest.raises(RegistryError, match="over the limit|more than"):
        extract_archive(_write(tmp_path, hostile.bomb(8 << 20)), tmp_path / "out")
    monkeypatch.setattr(_archive, "MAX_TOTAL_BYTES", 256 << 20)
    monkeypatch.setattr(_archive, "_SCAN_SLACK", 1 << 20)
    monkeypatch.setattr(_archive, "EXTRACT_BUDGET_S", 0.0)
    with pytest.raises(RegistryError, match="took longer than"):
        extract_archive(_write(tmp_path, build_archive({"plugin.yaml": b"id: x\n"}), "b.tar.gz"), tmp_path / "o2")


def _cli(env, *args, policy=None):
    cmd = [sys.executable, "-m", "promptline", "plugin", "install", *args, *env.cli_args(policy)]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, timeout=120,
                          env={**os.environ, "PROMPTLINE_INDEX": str(env.index)})
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode(), time.monotonic() - start


@pytest.mark.parametrize("name", ["pax-4MiB-claimed (short archive)", "pax-4MiB-digits (quadratic)",
                                  "gnu-longname-1GiB-claimed"])
def test_plugin_install_refuses_a_hostile_archive_with_one_clear_error(env, name):
    archive = _write(env.tmp, hostile.HOSTILE[name](), "hostile-0.1.0.tar.gz")
    before = snapshot(env.home)
    code, out, err, took = _cli(env, str(archive), policy=env.open_policy)
    assert code == 1, (out, err)
    assert "Traceback" not in err and "over the limit of 8192" in err, err
    assert took < HANG and snapshot(env.home) == before


def test_an_unsigned_index_entry_under_the_default_policy_is_refused_before_unpacking(env):
    """The entry is unsigned and the policy does not require signatures, so nothing vouches
    for the bytes: piped, it is not even downloaded; accepted with --allow-unsigned, the
    checksum is checked first (it matches), then the pre-scan refuses."""
    src = write_plugin(env.src, "demo")
    entry = publish(src, env.index, unsigned=True)
    assert entry.signature is None
    data = hostile.pax_digits(4 << 20)
    (env.index / entry.archive).write_bytes(data)
    doc = json.loads((env.index / INDEX_FILE).read_text())
    e = doc["plugins"]["demo"]["versions"]["0.1.0"]
    e["sha256"], e["size"] = hashlib.sha256(data).hexdigest(), len(data)
    (env.index / INDEX_FILE).write_text(json.dumps(doc))
    before = snapshot(env.home)
    code, out, err, took = _cli(env, "demo", "--index", str(env.index), policy=env.open_policy)
    assert code == 1 and "is not signed" in err and "nothing was downloaded" in err and "PAX" not in err, err
    code, out, err, took = _cli(env, "demo", "--index", str(env.index), "--allow-unsigned", policy=env.open_policy)
    assert code == 1 and "Traceback" not in err and "PAX header of" in err, err
    assert took < HANG and snapshot(env.home) == before
    # the checksum comes first: the same bytes under a wrong checksum never reach the scan
    e["sha256"] = "0" * 64
    (env.index / INDEX_FILE).write_text(json.dumps(doc))
    code, out, err, took = _cli(env, "demo", "--index", str(env.index), "--allow-unsigned", policy=env.open_policy)
    assert code == 1 and "does not match the index" in err and "PAX" not in err, err

"""Attribution: work a plugin hands to threads, executors, callbacks and generators is
still the plugin's (contextvar hand-offs plus frame provenance)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
import weakref

import pytest

from promptline.enforcer import PolicyViolation, privileged

SRC = """
import threading, concurrent.futures, asyncio, os, weakref

def read(path):
    with open(path) as fh:
        return fh.read()

def gen(path):
    yield 1
    yield read(path)

class Sneaky:
    def __init__(self, path, box):
        self.path, self.box = path, box
    def __del__(self):
        try:
            read(self.path)
            self.box.append("read")
        except PermissionError:
            self.box.append("refused")
    def __str__(self):
        return read(self.path)

def make_callback(path):
    return lambda *a: read(path)
"""


@pytest.fixture
def mod(plugins, load_module):
    enf = plugins.make({})
    return enf, load_module(plugins.plugin_dir("p1"), SRC)


def _outcome(fn, *args):
    try:
        fn(*args)
        return "read"
    except PermissionError:
        return "refused"


def test_plugin_code_without_guard_is_attributed_by_provenance(mod):
    enf, m = mod
    with pytest.raises(PolicyViolation):
        m.read("/etc/hostname")


def test_thread_started_by_plugin(mod):
    enf, m = mod
    out = []
    with enf.guard("p1"):
        t = threading.Thread(target=lambda: out.append(_outcome(open, "/etc/hostname")))
        t.start()
    t.join()
    assert out == ["refused"]


def test_thread_targeting_plugin_function_started_by_host(mod):
    enf, m = mod
    out = []
    t = threading.Thread(target=lambda: out.append(_outcome(m.read, "/etc/hostname")))
    t.start()
    t.join()
    assert out == ["refused"]


def test_executor_submit_of_builtin(mod):
    enf, m = mod
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        with enf.guard("p1"):
            fut = ex.submit(open, "/etc/hostname")
        with pytest.raises(PolicyViolation):
            fut.result()
        ex.submit(open, "/etc/hostname").result().close()  # the host's own submit still works


def test_asyncio_to_thread_and_run_in_executor(mod):
    enf, m = mod

    async def main():
        with enf.guard("p1"):
            with pytest.raises(PolicyViolation):
                await asyncio.to_thread(open, "/etc/hostname")
            loop = asyncio.get_running_loop()
            with pytest.raises(PolicyViolation):
                await loop.run_in_executor(None, open, "/etc/hostname")
    asyncio.run(main())


def test_generator_resumed_by_host(mod):
    enf, m = mod
    with enf.guard("p1"):
        g = m.gen("/etc/hostname")
    assert next(g) == 1
    with pytest.raises(PolicyViolation):
        next(g)


def test_dunder_called_by_host(mod):
    enf, m = mod
    with enf.guard("p1"):
        obj = m.Sneaky("/etc/hostname", [])
    with pytest.raises(PolicyViolation):
        str(obj)


def test_del_run_by_host(mod):
    enf, m = mod
    box = []
    with enf.guard("p1"):
        obj = m.Sneaky("/etc/hostname", box)
    del obj
    gc.collect()
    assert box == ["refused"]


def test_weakref_finalize_with_builtin(mod):
    enf, m = mod

    class Obj:
        pass
    o = Obj()
    out = []
    with enf.guard("p1"):
        weakref.finalize(o, lambda: out.append(_outcome(open, "/etc/hostname")))
    del o
    gc.collect()
    assert out == ["refused"]


def test_callback_handed_to_host(mod):
    enf, m = mod
    with enf.guard("p1"):
        cb = m.make_callback("/etc/hostname")
    with pytest.raises(PolicyViolation):
        cb()


def test_loop_call_soon_keeps_context(mod):
    enf, m = mod
    out = []

    async def main():
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        with enf.guard("p1"):
            loop.call_soon(lambda: (out.append(_outcome(open, "/etc/hostname")), done.set_result(1)))
        await done
    asyncio.run(main())
    assert out == ["refused"]


def test_privileged_host_code_called_by_plugin(plugins, load_module):
    enf = plugins.make({})

    @privileged
    def host_reads():
        with open("/etc/hostname") as fh:
            return fh.read()

    m = load_module(plugins.plugin_dir("p1"), """
def run(host_fn):
    return host_fn()
def run_and_call_back(host_fn, cb):
    return host_fn(cb)
def attempt():
    return open('/etc/hostname').read()
""")
    with enf.guard("p1"):
        assert m.run(host_reads)

    @privileged
    def host_calls_back(cb):
        return cb()
    with enf.guard("p1"), pytest.raises(PolicyViolation):
        m.run_and_call_back(host_calls_back, m.attempt)


def test_plugin_may_not_enter_privileged(plugins, load_module):
    plugins.make({})
    m = load_module(plugins.plugin_dir("p1"), """
from promptline import enforcer
def escape():
    with enforcer.privileged():
        return open('/etc/hostname').read()
def escape_decorated():
    return enforcer.privileged(lambda: open('/etc/hostname').read())()
""")
    with pytest.raises(PermissionError):
        m.escape()
    with pytest.raises(PermissionError):
        m.escape_decorated()


def test_two_plugins_concurrently(plugins):
    enf = plugins.make({"filesystem": {"read": [str(plugins.data) + "/"]}},
                       extra={"p2": {}})
    results = {}

    def work(pid):
        with enf.guard(pid):
            results[pid] = [_outcome(open, str(plugins.data / "a.txt")) for _ in range(200)]
    ts = [threading.Thread(target=work, args=(p,)) for p in ("p1", "p2")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert set(results["p1"]) == {"read"} and set(results["p2"]) == {"refused"}


def test_plugin_function_identical_to_a_host_function(plugins, load_module, tmp_path):
    # code objects compare equal by content, file name aside: the attribution cache is
    # keyed by identity, so a host function's cached entry never answers for the plugin's
    src = """
def read(path):
    with open(path) as fh:
        return fh.read()
"""
    plugins.make({})
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    m = load_module(plugins.plugin_dir("p1"), src)
    h = load_module(host_dir, src)
    assert h.read.__code__ == m.read.__code__
    assert h.read("/etc/hostname") is not None
    with pytest.raises(PolicyViolation):
        m.read("/etc/hostname")
    assert h.read("/etc/hostname") is not None


# -- the per-thread memo of host frames (Owners.walk_host) -------------------------------------

def _host_read_then(callback, path, depth):
    """Host frames `depth` deep: a host read (memoises the frames), then `callback` from the
    same, now memoised, frame, then a host read again."""
    if depth:
        return _host_read_then(callback, path, depth - 1)
    open(path).close()
    outcome = _outcome(callback, path)
    open(path).close()
    return outcome


@pytest.mark.parametrize("depth", [0, 5, 60])
def test_plugin_callback_called_from_a_memoised_host_frame(mod, depth):
    enf, m = mod
    allowed = __file__
    assert _host_read_then(m.read, "/etc/hostname", depth) == "refused"
    assert _host_read_then(lambda p: open(p).close(), allowed, depth) == "read"   # control


def test_host_generator_resumed_by_plugin_code_is_not_served_from_the_memo(mod, load_module, plugins):
    enf, m = mod
    drive = load_module(plugins.plugin_dir("p1"), "def drive(g):\n    return next(g)\n", name="drive_mod")

    def host_gen():
        while True:
            yield _outcome(open, "/etc/hostname")

    g = host_gen()
    assert next(g) == "read"            # the host drives it: its frames are the host's
    assert next(g) == "read"
    assert drive.drive(g) == "refused"  # plugin code resumes the same frame
    assert next(g) == "read"


def test_memo_does_not_keep_a_returned_frames_locals_past_a_collection(mod):
    enf, m = mod

    class Obj:
        pass

    def host_fn():
        o = Obj()
        open(__file__).close()         # walks and memoises this frame
        return weakref.ref(o)
    ref = host_fn()
    gc.collect()
    assert ref() is None


def test_memo_is_per_thread(mod):
    enf, m = mod
    open(__file__).close()              # memoise the main thread's frames
    out = []
    t = threading.Thread(target=lambda: out.append(_outcome(m.read, "/etc/hostname")))
    t.start()
    t.join()
    assert out == ["refused"]
    assert _outcome(open, __file__) == "read"


def test_host_event_raised_with_no_python_frame_on_its_thread(mod, tmp_path):
    """A raw thread running a builtin raises `open` with no Python frame at all: the host's."""
    import _thread
    import time
    enf, m = mod
    made = tmp_path / "made"
    _thread.start_new_thread(open, (str(made), "w"))
    deadline = time.monotonic() + 10
    while not made.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert made.exists()
    assert _host_read_then(m.read, "/etc/hostname", 3) == "refused"   # attribution still works


def test_a_host_finalizer_released_by_the_memo_does_not_run_inside_the_hook(mod):
    """The memo holds a returned host frame; when a later walk lets go of it, the frame's
    locals are freed after the hook is done: their finalizers' own audited calls work."""
    enf, m = mod
    out = []

    class Tidy:
        def __del__(self):
            try:
                open(__file__).close()
                out.append("ok")
            except PermissionError as exc:
                out.append(str(exc))

    def host_fn():
        keep = Tidy()   # noqa: F841 - freed with this frame
        open(__file__).close()   # the walk remembers this frame
    gc.disable()   # a collection would let go of it first
    try:
        host_fn()
        open(__file__).close()   # this walk lets go of host_fn's frame
    finally:
        gc.enable()
    assert out == ["ok"]
    assert _host_read_then(m.read, "/etc/hostname", 2) == "refused"

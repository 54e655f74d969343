"""Property: the memoised host walk (Owners.walk_host) attributes every frame exactly as the
full walk does, over random programs that nest host and plugin calls and create, suspend
and resume host and plugin generators from anywhere (so memoised frames sit above and below
generator frames that are later resumed under other callers)."""

from __future__ import annotations

import _thread
import gc
import sys

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from promptline.enforcer import _hook

STEP = '''
def step(ctx):
    while ctx.ops:
        op = ctx.ops.pop()
        if op == "r":
            return
        ctx.do(op)

def gen(ctx):
    while True:
        step(ctx)
        yield
'''

_host = {}
exec(compile(STEP, __file__, "exec"), _host)   # host code: this file


class Program:
    def __init__(self, ops, plugin_mod) -> None:
        self.ops = list(reversed(ops))
        self.plugin = plugin_mod
        self.pool: list = []
        self.checks = 0
        self.mismatches: list = []

    def do(self, op: str) -> None:
        if op == "h":
            _host["step"](self)
        elif op == "p":
            self.plugin.step(self)
        elif op == "gh":
            self.pool.append(_host["gen"](self))
        elif op == "gp":
            self.pool.append(self.plugin.gen(self))
        elif op.startswith("x") and self.pool:
            g = self.pool[int(op[1:]) % len(self.pool)]
            try:
                next(g)
            except (StopIteration, ValueError):   # finished, or resumed from inside itself
                pass
        elif op == "c":
            self.check()

    def check(self) -> None:
        snap = _hook.BOX[0]
        frame = sys._getframe(1)
        tid = _thread.get_ident()
        _hook.BUSY[tid] = _hook.WALK
        try:
            truth = snap.owners.walk(frame)
            memo = snap.owners.walk_host(frame)
        finally:
            del _hook.BUSY[tid]
        self.checks += 1
        if truth != memo:
            self.mismatches.append((truth, memo))


_LEAF = st.sampled_from([["c"], ["gh"], ["gp"], ["x0"], ["x1"], ["x2"]])


def _nest(children):
    """A host or plugin call whose body is a few programs, then its return."""
    return st.builds(lambda kind, body: [kind, *sum(body, []), "r"],
                     st.sampled_from(["h", "p"]), st.lists(children, max_size=4))


OPS = st.lists(st.recursive(_LEAF, _nest, max_leaves=24), max_size=8).map(lambda xs: sum(xs, []))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
@example(ops=["gh", "x0", "c", "r", "p", "x0", "c"])   # a host generator resumed under plugin code
@example(ops=["p", "gh", "x0", "c", "r", "r", "x0", "c"])   # ... and the other way round
def test_memoised_walk_agrees_with_the_full_walk(plugins, load_module, ops):
    if not plugins.enforcers:
        plugins.make({})
    plugin_mod = load_module(plugins.plugin_dir("p1"), STEP, name="steps")
    gc.disable()   # a collection drops the memo: the run must meet it
    try:
        for _ in range(2):   # the second run meets the memo the first one left
            prog = Program(ops + ["c"], plugin_mod)
            _host["step"](prog)
            prog.check()
            for g in prog.pool:
                g.close()
            assert prog.mismatches == []
            assert prog.checks >= 1
    finally:
        gc.enable()


def test_the_property_sees_plugin_frames(plugins, load_module):
    """Control: the program interpreter really puts plugin frames under a check."""
    plugins.make({})
    plugin_mod = load_module(plugins.plugin_dir("p1"), STEP, name="steps")
    seen = []

    class Probe(Program):
        def check(self):
            super().check()
            snap = _hook.BOX[0]
            tid = _thread.get_ident()
            _hook.BUSY[tid] = _hook.WALK
            try:
                seen.append(snap.owners.walk_host(sys._getframe(1)))
            finally:
                del _hook.BUSY[tid]
    prog = Probe(["c", "p", "c", "gp", "r", "x0", "c", "gh", "x1", "c"], plugin_mod)
    _host["step"](prog)
    assert seen == [None, "p1", "p1", "p1"] and prog.mismatches == []

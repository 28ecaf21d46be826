"""Dependency-token insertion: TVM's ``CoProcSync`` on the ``vta`` queues (vta-spec §6.7).

Each ``coproc_scope = q`` statement is a node of queue q; consecutive nodes of different
queues get a push at the end of the first and a pop at the start of the second. A loop is one
node whose loop-carried dependency (last → first) is inserted inside it; unmatched pushes and
pops are balanced with compensating pops/pushes around it. A single ``vta.coproc_sync``
follows the whole body. Runs before virtual threads are expanded.
"""
from __future__ import annotations

from ...ir import Allocate, Attr, For, Seq, evaluate, seq


class _State:
    __slots__ = ("node", "enter_ctx", "exit_ctx", "enter_pop", "exit_push")

    def __init__(self):
        self.node = None
        self.enter_ctx, self.exit_ctx = [], []
        self.enter_pop, self.exit_push = [], []

    def copy(self):
        s = _State()
        s.node = self.node
        s.enter_ctx, s.exit_ctx = list(self.enter_ctx), list(self.exit_ctx)
        s.enter_pop, s.exit_push = list(self.enter_pop), list(self.exit_push)
        return s


def _push(a, b):
    return evaluate("vta.coproc_dep_push", a, b)


def _pop(a, b):
    return evaluate("vta.coproc_dep_pop", a, b)


class _Detector:
    def __init__(self):
        self.before: dict = {}
        self.after: dict = {}
        self.first, self.last, self.curr = _State(), _State(), _State()

    def plan(self, stmt):
        self.visit(stmt)
        if self.last.node is not None:
            self._fix_enter_pop(self.first)
            self._fix_exit_push(self.last)

    def visit(self, s):
        if isinstance(s, Attr) and s.key == "coproc_scope":
            self.curr = _State()
            self.curr.node = s.body
            self.curr.enter_ctx, self.curr.exit_ctx = [s.value], [s.value]
            self._update()
        elif isinstance(s, For):
            saved_first, saved_last = self.first, self.last
            self.first, self.last = _State(), _State()
            self.visit(s.body)
            self.curr = _State()
            if self.last.node is not None:
                self.curr.node = s
                push, pop = self._inject(self.last, self.first)
                self.curr.exit_push, self.curr.enter_pop = push, pop
                self.curr.enter_ctx = list(self.first.enter_ctx)
                self.curr.exit_ctx = list(self.last.exit_ctx)
            self.first, self.last = saved_first, saved_last
            if self.curr.node is not None:
                self._update()
        elif isinstance(s, Seq):
            for x in s.stmts:
                self.visit(x)
        elif isinstance(s, (Attr, Allocate)):
            self.visit(s.body)

    def _update(self):
        if self.last.node is not None:
            self._inject(self.last, self.curr)
            self.last = self.curr
        else:
            self.first = self.curr
            self.last = self.curr.copy() if False else self.curr

    def _inject(self, prev, nxt):
        exit_push, enter_pop = [], []
        if not prev.exit_push and not nxt.enter_pop and len(prev.exit_ctx) == 1 and len(nxt.enter_ctx) == 1:
            f, t = prev.exit_ctx[0], nxt.enter_ctx[0]
            if f != t:
                self.after.setdefault(id(prev.node), []).append(_push(f, t))
                self.before.setdefault(id(nxt.node), []).append(_pop(f, t))
                exit_push.append((f, t))
                enter_pop.append((f, t))
            return exit_push, enter_pop
        vpush, vpop = list(prev.exit_push), list(nxt.enter_pop)
        pending = [(f, t) for f in prev.exit_ctx for t in nxt.enter_ctx if f != t]
        prev_after, next_before = [], []
        for p in pending:
            if p not in prev.exit_push:
                vpush.append(p)
                prev_after.append(_push(*p))
            if p not in nxt.enter_pop:
                vpop.append(p)
                next_before.append(_pop(*p))
        for p in vpush:
            if p not in vpop:
                prev_after.append(_pop(*p))
            else:
                exit_push.append(p)
        for p in vpop:
            if p not in vpush:
                next_before.append(_push(*p))
            else:
                enter_pop.append(p)
        if prev_after:
            self.after.setdefault(id(prev.node), []).extend(prev_after)
        if next_before:
            self.before.setdefault(id(nxt.node), []).extend(next_before)
        return exit_push, enter_pop

    def _fix_enter_pop(self, state):
        for p in state.enter_pop:
            self.before.setdefault(id(state.node), []).append(_push(*p))

    def _fix_exit_push(self, state):
        for p in state.exit_push:
            self.after.setdefault(id(state.node), []).append(_pop(*p))


def coproc_sync(stmt, ctx):
    det = _Detector()
    det.after[id(stmt)] = [evaluate("vta.coproc_sync")]
    det.plan(stmt)
    keep_alive = stmt   # ids above refer to nodes of this tree

    def rewrite(s):
        b, a = det.before.get(id(s), []), det.after.get(id(s), [])
        if isinstance(s, For):
            n = For(s.var, s.extent, rewrite(s.body))
        elif isinstance(s, Seq):
            n = seq(*[rewrite(x) for x in s.stmts])
        elif isinstance(s, Attr):
            n = Attr(s.key, s.value, rewrite(s.body), s.node)
        elif isinstance(s, Allocate):
            n = Allocate(s.buffer, rewrite(s.body))
        else:
            n = s
        return seq(*b, n, *a) if (b or a) else n

    out = rewrite(keep_alive)
    return out

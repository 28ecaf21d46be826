"""Virtual threads (``cthread``): TVM's InjectVirtualThread for non-sharing threads (§6.8).

Every allocation inside the thread scope is replicated (thread t at offset t·extent). Each
coprocessor scope, each call and each statement touching the thread variable is replicated
at its own nesting level: unrolled (t = 0, 1, ...) when it holds no loop, else wrapped in a
``for t`` loop — which is what interleaves the threads' loads and computes.
"""
from __future__ import annotations

from ...ir import Affine, Allocate, Attr, Buffer, Evaluate, For, Load, Seq, SramPtr, Store, Var, seq
from ..visit import map_stmt, substitute


def _has_loop(s):
    if isinstance(s, For):
        return True
    if isinstance(s, Seq):
        return any(_has_loop(x) for x in s.stmts)
    if isinstance(s, (Attr, Allocate)):
        return _has_loop(s.body)
    return False


class _Injector:
    def __init__(self, var: Var, n: int):
        self.var, self.n = var, n
        self.remap: dict = {}

    def replicate(self, s):
        if not _has_loop(s) and self.n < 16:
            return seq(*[substitute(s, {self.var: t}) for t in range(self.n)])
        loop_var = Var(self.var.name + ".s")
        return For(loop_var, self.n, substitute(s, {self.var: Affine({loop_var: 1})}))

    def shift(self, s):
        """Offset every access to a replicated buffer by var·extent."""
        t = Affine({self.var: 1})

        def fexpr(e):
            if isinstance(e, Load) and e.buffer in self.remap:
                nb, stride = self.remap[e.buffer]
                return Load(nb, e.index + t.scale(stride))
            if isinstance(e, SramPtr) and e.buffer in self.remap:
                nb, stride = self.remap[e.buffer]
                return SramPtr(nb, e.index + t.scale(stride))
            return None

        def fstmt(x):
            if isinstance(x, Store) and x.buffer in self.remap:
                nb, stride = self.remap[x.buffer]
                return Store(nb, x.index + t.scale(stride), x.value)
            return None

        return map_stmt(s, fstmt, fexpr)

    def visit(self, s):
        if isinstance(s, Attr) and s.key in ("coproc_scope", "coproc_uop_scope"):
            return self.replicate(self.shift(s))
        if isinstance(s, (Evaluate, Store)):
            return self.replicate(self.shift(s))
        if isinstance(s, Attr):
            return Attr(s.key, s.value, self.visit(s.body), s.node)
        if isinstance(s, For):
            return For(s.var, s.extent, self.visit(s.body))
        if isinstance(s, Seq):
            return seq(*[self.visit(x) for x in s.stmts])
        if isinstance(s, Allocate):
            b = s.buffer
            nb = Buffer(b.name, b.dtype, b.extent * self.n, b.scope)
            nb.parts = getattr(b, "parts", [b.name])
            self.remap[b] = (nb, b.extent)
            return Allocate(nb, self.visit(s.body))
        return s


def inject_virtual_thread(stmt, ctx):
    def f(s):
        if isinstance(s, Attr) and s.key == "virtual_thread":
            return _Injector(s.node, int(s.value)).visit(s.body)
        return None

    return map_stmt(stmt, f)

"""Run the host side of the final IR at build time: loops are iterated with concrete values
and every runtime call goes to a :class:`~compiler.runtime.CommandQueue`. A uop scope becomes
``push_gemm_op``/``push_alu_op`` whose ``finit`` interprets the scope body against the kernel
recorder; the runtime records it once per (site, signature)."""
from __future__ import annotations

from ..ir import (Affine, Allocate, Attr, BinOp, CompileError, Evaluate, For, IntImm, Seq, Store, free_vars)


def _ev(e, env):
    if isinstance(e, int):
        return e
    if isinstance(e, Affine):
        v = e.const
        for var, c in e.terms.items():
            v += c * env[var]
        return v
    if isinstance(e, IntImm):
        return e.value
    if isinstance(e, BinOp):
        a, b = _ev(e.a, env), _ev(e.b, env)
        op = e.op
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "max":
            return max(a, b)
        if op == "min":
            return min(a, b)
        if op == "//":
            return a // b
        if op == "%":
            return a % b
    raise CompileError(f"cannot evaluate {e!r} on the host")


_BINOPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "max": max, "min": min,
           "//": lambda a, b: a // b, "%": lambda a, b: a % b}


def _compile(e):
    """``_ev`` of ``e`` as a closure over the loop-variable environment (built once per call
    site: the host loops evaluate the same expressions thousands of times)."""
    if isinstance(e, int):
        return lambda env, v=e: v
    if isinstance(e, IntImm):
        return lambda env, v=e.value: v
    if isinstance(e, Affine):
        const, terms = e.const, tuple(e.terms.items())
        if not terms:
            return lambda env: const
        if len(terms) == 1:
            (var, c), = terms
            return lambda env: const + c * env[var]
        if len(terms) == 2:
            (v1, c1), (v2, c2) = terms
            return lambda env: const + c1 * env[v1] + c2 * env[v2]
        if len(terms) == 3:
            (v1, c1), (v2, c2), (v3, c3) = terms
            return lambda env: const + c1 * env[v1] + c2 * env[v2] + c3 * env[v3]

        def many(env):
            total = const
            for var, c in terms:
                total += c * env[var]
            return total
        return many
    if isinstance(e, BinOp) and e.op in _BINOPS:
        fa, fb, op = _compile(e.a), _compile(e.b), _BINOPS[e.op]
        return lambda env: op(fa(env), fb(env))
    return lambda env: _ev(e, env)   # raises the evaluation error when called


class Executor:
    def __init__(self, queue, phys: dict):
        self.q, self.phys = queue, phys
        self._sig_vars: dict = {}
        self._sites: dict = {}
        self._args: dict = {}   # id(call) -> (call, compiled argument evaluators)

    def run(self, s, env):
        if isinstance(s, For):
            var, body = s.var, s.body
            for i in range(s.extent):
                env[var] = i
                self.run(body, env)
        elif isinstance(s, Seq):
            for x in s.stmts:
                self.run(x, env)
        elif isinstance(s, Attr):
            if s.key == "coproc_uop_scope":
                self._push(s, env)
            else:
                self.run(s.body, env)
        elif isinstance(s, Allocate):
            self.run(s.body, env)
        elif isinstance(s, Evaluate):
            self._call(s.call, env)
        elif isinstance(s, Store):
            raise CompileError(f"stage {s.buffer.name} is computed on the host: mark it with dma_copy, alu or "
                               f"tensorize (VTA kernels have no host compute)")
        elif s is not None:
            raise CompileError(f"cannot execute {s!r}")

    def _compiled(self, c, skip):
        found = self._args.get(id(c))
        if found is None or found[0] is not c:
            found = self._args[id(c)] = (c, [None if i in skip else _compile(x) for i, x in enumerate(c.args)])
        return found[1]

    def _call(self, c, env):
        n, a = c.name, c.args
        if n == "VTALoadBuffer2D":
            fs = self._compiled(c, (0,))
            self.q.load_buffer_2d(self.phys[a[0].buffer], *[f(env) for f in fs[1:]])
        elif n == "VTAStoreBuffer2D":
            fs = self._compiled(c, (2,))
            self.q.store_buffer_2d(fs[0](env), fs[1](env), self.phys[a[2].buffer], *[f(env) for f in fs[3:]])
        elif n == "vta.coproc_dep_push":
            self.q.dep_push(a[0], a[1])
        elif n == "vta.coproc_dep_pop":
            self.q.dep_pop(a[0], a[1])
        elif n == "vta.coproc_sync":
            self.q.synchronize()
        else:
            raise CompileError(f"unexpected host call {n}")

    def _push(self, scope, env):
        key = id(scope)
        if key not in self._sig_vars:
            vs = sorted(free_vars(scope.body), key=lambda v: v.uid)
            if len(vs) > 1:
                raise CompileError(f"a uop kernel depends on {len(vs)} host variables ({', '.join(v.name for v in vs)}); "
                                   f"the runtime signature holds one")
            self._sig_vars[key] = vs[0] if vs else None
        sv = self._sig_vars[key]
        sig = None if sv is None else env[sv]
        if sig is not None and not 0 <= sig < 99:
            raise CompileError(f"uop kernel signature {sv.name}={sig} is outside [0, 98] (runtime limit)")
        body = scope.body

        def finit(rec):
            _record(body, dict(env), rec)

        site = self._sites.get(key)
        if site is None:
            site = self._sites[key] = _Site(scope)
        if scope.value == "VTAPushGEMMOp":
            self.q.push_gemm_op(site, finit, sig)
        else:
            self.q.push_alu_op(site, finit, sig)


class _Site:
    """The static handle of one uop scope (upstream: a static variable per call site); its
    name is what runtime errors print."""

    def __init__(self, scope):
        self.scope = scope
        self.kind = "GEMM" if scope.value == "VTAPushGEMMOp" else "ALU"

    def __repr__(self) -> str:
        return f"the {self.kind} uop scope"


def _record(s, env, rec):
    if isinstance(s, For):
        for i in range(s.extent):
            env[s.var] = i
            _record(s.body, env, rec)
    elif isinstance(s, Seq):
        for x in s.stmts:
            _record(x, env, rec)
    elif isinstance(s, Evaluate):
        c = s.call
        if c.name == "vta.uop_push":
            rec.uop_push(*[_ev(x, env) for x in c.args])
        elif c.name == "VTAUopLoopBegin":
            rec.loop_begin(*[_ev(x, env) for x in c.args])
        elif c.name == "VTAUopLoopEnd":
            rec.loop_end()
        else:
            raise CompileError(f"unexpected call {c.name} inside a uop kernel")
    elif isinstance(s, Attr):
        _record(s.body, env, rec)
    elif s is not None:
        raise CompileError(f"unexpected statement inside a uop kernel: {type(s).__name__} "
                           f"(an ALU/GEMM nest that was not turned into uops)")

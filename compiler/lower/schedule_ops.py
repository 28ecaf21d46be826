"""Schedule → loop nest (TVM's ScheduleOps + StorageFlatten, already flat).

Every stage becomes a nest of its leaf loops (unit loops dropped, as TVM does); stages computed
at an axis are placed at the start of that loop's body, in dependency order, with their
allocations hoisted there (LiftAllocToScopeBegin). A reduction places its init nest before the
first reduction loop; a stage tensorized with ``env.gemm`` becomes GEMM uop pushes (reset in
the init nest, accumulate in the update nest).
"""
from __future__ import annotations

import math

from ..ir import (Affine, Allocate, And, Attr, BinOp, Buffer, Call, Cast, Cmp, CompileError, Evaluate,
                  Expr, For, IntImm, Load, Select, SramPtr, Store, Var, binop, seq, to_affine)
from ..te import Reduce, TensorRead
from .bounds import infer_bounds
from .visit import substitute


class ScopeName(str):
    """Value of a ``coproc_uop_scope`` attribute. Compared by identity when scopes are lifted:
    upstream's GEMM intrinsic reuses one string object (so adjacent GEMM scopes merge) while
    each ALU scope gets a fresh one (so they never do)."""


GEMM_UOP_SCOPE = ScopeName("VTAPushGEMMOp")


class _Lowerer:
    def __init__(self, schedule, args, env):
        self.s, self.env = schedule, env
        self.infos = infer_bounds(schedule)
        self.arg_ops = [a.op for a in args]
        self.attached: dict = {}
        for st in schedule.stages:
            if st.attach_stage is not None:
                self.attached.setdefault(st.attach_ivar, []).append(st)
        self.buffers: dict = {}
        for st in schedule.stages:
            self._make_buffer(st)

    # ---- buffers ---------------------------------------------------------------------------
    def _make_buffer(self, st):
        info = self.infos[st]
        op = st.op
        if st.is_placeholder or op in self.arg_ops:
            buf = Buffer(op.name, op.dtype, math.prod(op.shape), "global", op.shape)
            info.root_min = {iv: Affine() for iv in op.axis} if not st.is_placeholder else {}
            info.strides, info.mins = _strides(op.shape), [Affine()] * len(op.shape)
        else:
            shape = [info.ext[iv] for iv in op.axis]
            buf = Buffer(op.name, op.dtype, math.prod(shape), st.scope, shape)
            info.strides, info.mins = _strides(shape), [info.root_min[iv] for iv in op.axis]
        info.buffer = buf
        self.buffers[op] = buf

    def flat(self, op, idx) -> Affine:
        info = self.infos[self.s[op]]
        out = Affine()
        for d, (e, lo, stride) in enumerate(zip(idx, info.mins, info.strides)):
            out = out + (e - lo).scale(stride)
        return out

    # ---- expressions -----------------------------------------------------------------------
    def lower_expr(self, e, vmap):
        if isinstance(e, TensorRead):
            idx = []
            for d, i in enumerate(e.indices):
                aff = to_affine(self.lower_expr(i, vmap))
                if aff is None:
                    raise CompileError(f"read of {e.tensor.name} dimension {d}: index {i!r} is not affine")
                idx.append(aff)
            return Load(self.buffers[e.tensor.op], self.flat(e.tensor.op, idx))
        if isinstance(e, Var):
            return vmap[e] if e in vmap else e
        if isinstance(e, IntImm):
            return e
        if isinstance(e, BinOp):
            r = binop(e.op, self.lower_expr(e.a, vmap), self.lower_expr(e.b, vmap))
            aff = to_affine(r) if e.op in "+-*" else None
            return aff if aff is not None else r
        if isinstance(e, Cast):
            return Cast(e.dtype, self.lower_expr(e.value, vmap))
        if isinstance(e, Cmp):
            return Cmp(e.op, self.lower_expr(e.a, vmap), self.lower_expr(e.b, vmap))
        if isinstance(e, And):
            return And(*[self.lower_expr(t, vmap) for t in e.terms])
        if isinstance(e, Select):
            return Select(self.lower_expr(e.cond, vmap), self.lower_expr(e.t, vmap), self.lower_expr(e.f, vmap))
        if isinstance(e, Reduce):
            raise CompileError("a reduction may only be the whole body of a compute stage")
        raise CompileError(f"cannot lower expression {e!r}")

    # ---- nests -----------------------------------------------------------------------------
    def stage_stmt(self, st):
        """The producer statement of one stage (with everything attached inside it)."""
        info = self.infos[st]
        op = st.op
        vmap = {iv.var: info.root_value(iv) for iv in info.roots}
        leaves = st.leaf_iter_vars
        out_idx = self.flat(op, [vmap[iv.var] for iv in op.axis])
        buf = self.buffers[op]
        if st.tensorize_ivar is not None:
            return self._tensorized(st, info, vmap, out_idx)
        if isinstance(st.body, Reduce):
            first = next((k for k, iv in enumerate(leaves) if iv.kind == "reduce"), len(leaves))
            init = self._init_nest(st, leaves[first:], Store(buf, out_idx, IntImm(0, op.dtype)))
            src = self.lower_expr(st.body.source, vmap)
            update = self.loops(st, leaves[first:], Store(buf, out_idx, binop("+", Load(buf, out_idx), src)))
            return self.loops(st, leaves[:first], seq(init, update))
        return self.loops(st, leaves, Store(buf, out_idx, self.lower_expr(st.body, vmap)))

    def loops(self, st, leaves, body):
        info = self.infos[st]
        for iv in reversed(leaves):
            body = self._with_attached(iv, body)
            ext = info.ext[iv]
            if iv in st.binds and ext > 1:
                body = Attr("virtual_thread", ext, body, node=iv.var)
            elif ext > 1:
                body = For(iv.var, ext, body)
            for name in st.pragmas.get(iv, []):
                body = Attr("pragma_" + name, 1, body, node=iv)
        return body

    def _init_nest(self, st, leaves, body):
        """Loops over the non-reduction leaves with fresh ``.init`` variables (no attach points)."""
        info = self.infos[st]
        mapping = {}
        kept = []
        for iv in leaves:
            if iv.kind == "reduce" or info.ext[iv] == 1:
                continue
            v = Var(iv.var.name + ".init")
            mapping[iv.var] = v
            kept.append((v, info.ext[iv]))
        body = substitute(body, mapping)
        for v, ext in reversed(kept):
            body = For(v, ext, body)
        return body

    def _with_attached(self, iv, body):
        stages = self.attached.get(iv, [])
        if not stages:
            return body
        body = seq(*[self.stage_stmt(a) for a in stages], body)
        for a in reversed(stages):
            body = Allocate(self.buffers[a.op], body)
        return body

    # ---- GEMM tensorize --------------------------------------------------------------------
    def _tensorized(self, st, info, vmap, out_idx):
        env, op = self.env, st.op
        if st.tensorize_intrin is not env.gemm:
            raise CompileError(f"tensorize of stage {op.name}: only env.gemm is supported")
        leaves = st.leaf_iter_vars
        tloc = leaves.index(st.tensorize_ivar)
        inner = _intrinsic_loops(leaves[tloc:], info.ext)
        want = (env.BATCH, env.BLOCK_OUT, env.BLOCK_IN)
        got = tuple(info.ext[iv] for iv in inner) if inner else ()
        kinds = tuple(iv.kind for iv in inner) if inner else ()
        if got != want or kinds != ("data", "data", "reduce") or any(iv not in info.roots for iv in inner):
            raise CompileError(f"tensorize of stage {op.name} at {st.tensorize_ivar.name}: the GEMM intrinsic needs "
                               f"unsplit loops (batch {want[0]}, out {want[1]}, reduce {want[2]}); the region has "
                               f"{[(iv.name, info.ext[iv], iv.kind) for iv in leaves[tloc:]]}")
        # Unit loops inside the region (e.g. a size-1 tile of another axis) iterate once at 0.
        unit = {iv.var: 0 for iv in leaves[tloc:] if iv not in inner}
        body = st.body
        reads = _gemm_operands(body, op.name)
        scope_of = {self.s[t.op].scope: t for t in reads}
        if env.inp_scope not in scope_of or env.wgt_scope not in scope_of:
            raise CompileError(f"tensorize of stage {op.name}: GEMM operands must live in {env.inp_scope} and "
                               f"{env.wgt_scope}; got {[(t.name, self.s[t.op].scope) for t in reads]} (missing set_scope?)")
        if st.scope != env.acc_scope:
            raise CompileError(f"tensorize of stage {op.name}: the GEMM result must live in {env.acc_scope}, "
                               f"scope is {st.scope!r} (missing set_scope?)")
        b, o, k = (iv.var for iv in inner)
        zero = {b: 0, o: 0, k: 0, **unit}
        src = body.source
        # operand indices (before the tensorized loops are zeroed), for the shape check
        ptrs = {}
        for t in reads:
            read = _find_read(src, t)
            idx = [to_affine(self.lower_expr(i, vmap)) for i in read.indices]
            ptrs[self.s[t.op].scope] = (t, self.flat(t.op, idx))
        inp_t, inp_idx = ptrs[env.inp_scope]
        wgt_t, wgt_idx = ptrs[env.wgt_scope]
        checks = [(op.name, out_idx, {b: env.BLOCK_OUT, o: 1, k: 0}),
                  (inp_t.name, inp_idx, {b: env.BLOCK_IN, o: 0, k: 1}),
                  (wgt_t.name, wgt_idx, {b: 0, o: env.BLOCK_IN, k: 1})]
        for name, idx, coeffs in checks:
            for v, c in coeffs.items():
                if v in [iv.var for iv in inner if info.ext[iv] > 1] and idx.coeff(v) != c:
                    raise CompileError(f"tensorize of stage {op.name}: {name} is not indexed as the GEMM intrinsic "
                                       f"expects (coefficient of {v.name} is {idx.coeff(v)}, needs {c})")
        out_buf = self.buffers[op]
        dst = SramPtr(out_buf, out_idx.subst(zero))
        gemm = _uop_scope(Call("vta.uop_push", [0, 0, dst, SramPtr(self.buffers[inp_t.op], inp_idx.subst(zero)),
                                                SramPtr(self.buffers[wgt_t.op], wgt_idx.subst(zero)), 0, 0, 0]))
        reset = _uop_scope(Call("vta.uop_push", [0, 1, dst, 0, 0, 0, 0, 0]))
        first = next((j for j, iv in enumerate(leaves) if iv.kind == "reduce"), len(leaves))
        if first >= tloc:
            raise CompileError(f"tensorize of stage {op.name}: no reduction loop outside the tensorized region, so the "
                               f"accumulator would never be reset (split the reduction axis)")
        init = self._init_nest(st, leaves[first:tloc], reset)
        update = self.loops(st, leaves[first:tloc], gemm)
        return self.loops(st, leaves[:first], seq(init, update))


def _intrinsic_loops(region, extent):
    """The (batch, out, reduce) loops of a tensorized region: the tensorize axis, then the
    innermost data and reduce loops; every other loop in the region must have extent 1."""
    def pick(kind):
        loops = [iv for iv in region[1:] if iv.kind == kind]
        wide = [iv for iv in loops if extent[iv] != 1]
        return wide[0] if len(wide) == 1 else (loops[-1] if loops and not wide else None)

    chosen = [region[0], pick("data"), pick("reduce")]
    if None in chosen:
        return None
    if any(extent[iv] != 1 for iv in region if iv not in chosen):
        return None
    if region.index(chosen[1]) > region.index(chosen[2]):
        return None
    return chosen


def _uop_scope(call):
    return Attr("coproc_scope", 2, Attr("coproc_uop_scope", GEMM_UOP_SCOPE, Evaluate(call)))


def _gemm_operands(body, name):
    ok = isinstance(body, Reduce)
    src = body.source if ok else None
    if ok and isinstance(src, BinOp) and src.op == "*":
        a, b = (x.value if isinstance(x, Cast) else x for x in (src.a, src.b))
        if isinstance(a, TensorRead) and isinstance(b, TensorRead):
            return [a.tensor, b.tensor]
    raise CompileError(f"tensorize of stage {name}: the body must be sum(a[...] * b[...]) over a reduction to match "
                       f"the GEMM intrinsic, got {body!r}")


def _find_read(e, t):
    if isinstance(e, TensorRead) and e.tensor is t:
        return e
    for v in e.__dict__.values():
        if isinstance(v, Expr) and not isinstance(v, Var):
            r = _find_read(v, t)
            if r is not None:
                return r
    return None


def _strides(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return list(reversed(strides))


def schedule_ops(schedule, args, env):
    """(body statement, {op: Buffer}) for a schedule and its argument tensors."""
    low = _Lowerer(schedule, args, env)
    roots = [st for st in schedule.stages if st.attach_stage is None and not st.is_placeholder]
    body = seq(*[low.stage_stmt(st) for st in roots])
    for st in reversed(roots):
        if st.op not in low.arg_ops:
            body = Allocate(low.buffers[st.op], body)
    return body, low

"""Schedules: one :class:`Stage` per operation, holding the loop transformations of ``tvm.te``.

The stage records relations (split, fuse), leaf order, attachment (compute_at), memory
scope, pragmas, tensorize and thread bindings; :mod:`compiler.lower` turns them into loops.
"""
from __future__ import annotations

from .ir import CompileError, Expr, IntImm, Var
from .te import ComputeOp, IterVar, PlaceholderOp, Reduce, Tensor, TensorRead, compute


class Split:
    def __init__(self, parent, outer, inner, factor):
        self.parent, self.outer, self.inner, self.factor = parent, outer, inner, factor


class Fuse:
    def __init__(self, outer, inner, fused):
        self.outer, self.inner, self.fused = outer, inner, fused


class Stage:
    """Scheduling state of one operation (``s[T]``)."""

    def __init__(self, op, schedule):
        self.op, self.schedule = op, schedule
        self.leaf_iter_vars = list(op.axis) + list(op.reduce_axis)
        self.relations: list = []
        self.attach_stage = None      # compute_at parent stage
        self.attach_ivar = None
        self.scope = "global"
        self.pragmas: dict = {}        # IterVar -> [pragma names]
        self.tensorize_ivar = None
        self.tensorize_intrin = None
        self.binds: dict = {}          # IterVar -> thread IterVar
        # The body as this schedule sees it: cache_read redirects reads here, leaving the
        # user's operation untouched so one declaration can be scheduled many times.
        self.body = getattr(op, "body", None)

    @property
    def inputs(self):
        from .te import _tensors_read
        return _tensors_read(self.body) if self.body is not None else []

    @property
    def is_placeholder(self):
        return isinstance(self.op, PlaceholderOp)

    def __repr__(self):
        return f"stage({self.op.name})"

    def _check_leaf(self, iv, what):
        if iv not in self.leaf_iter_vars:
            names = [x.name for x in self.leaf_iter_vars]
            raise CompileError(f"{what}: axis {getattr(iv, 'name', iv)} is not a current loop of stage "
                               f"{self.op.name} (loops: {names})")

    def set_scope(self, scope: str):
        self.scope = scope
        return self

    def pragma(self, iv, name: str, value=None):
        self._check_leaf(iv, f"pragma {name}")
        self.pragmas.setdefault(iv, []).append(name)

    def split(self, iv, factor=None, nparts=None):
        self._check_leaf(iv, "split")
        if (factor is None) == (nparts is None):
            raise CompileError(f"split of {iv.name} in stage {self.op.name}: give exactly one of factor, nparts")
        kind = iv.kind if iv.kind == "reduce" else "data"
        outer = IterVar((0, 0), iv.name + ".outer", kind)
        inner = IterVar((0, 0), iv.name + ".inner", kind)
        self.relations.append(Split(iv, outer, inner, ("factor", int(factor)) if factor is not None
                                    else ("nparts", int(nparts))))
        k = self.leaf_iter_vars.index(iv)
        self.leaf_iter_vars[k:k + 1] = [outer, inner]
        return outer, inner

    def tile(self, x, y, x_factor, y_factor):
        xo, xi = self.split(x, factor=x_factor)
        yo, yi = self.split(y, factor=y_factor)
        self.reorder(xo, yo, xi, yi)
        return xo, yo, xi, yi

    def fuse(self, *ivs):
        if len(ivs) == 1:
            return ivs[0]
        fused = ivs[0]
        for iv in ivs[1:]:
            self._check_leaf(fused, "fuse")
            self._check_leaf(iv, "fuse")
            k = self.leaf_iter_vars.index(fused)
            if self.leaf_iter_vars.index(iv) != k + 1:
                raise CompileError(f"fuse in stage {self.op.name}: {fused.name} and {iv.name} are not adjacent loops")
            kind = "reduce" if fused.kind == "reduce" and iv.kind == "reduce" else "data"
            new = IterVar((0, 0), f"{fused.name}.{iv.name}.fused", kind)
            self.relations.append(Fuse(fused, iv, new))
            self.leaf_iter_vars[k:k + 2] = [new]
            fused = new
        return fused

    def reorder(self, *ivs):
        for iv in ivs:
            self._check_leaf(iv, "reorder")
        if len(set(ivs)) != len(ivs):
            raise CompileError(f"reorder in stage {self.op.name}: an axis appears twice")
        pos = sorted(self.leaf_iter_vars.index(iv) for iv in ivs)
        for p, iv in zip(pos, ivs):
            self.leaf_iter_vars[p] = iv

    def compute_at(self, parent: "Stage", iv):
        parent._check_leaf(iv, f"compute_at of {self.op.name}")
        self.attach_stage, self.attach_ivar = parent, iv

    def compute_root(self):
        self.attach_stage = self.attach_ivar = None

    def tensorize(self, iv, intrin):
        self._check_leaf(iv, "tensorize")
        self.tensorize_ivar, self.tensorize_intrin = iv, intrin

    def bind(self, iv, thread: IterVar):
        self._check_leaf(iv, "bind")
        tag = getattr(thread, "thread_tag", "")
        if tag not in ("cthread", "vthread"):
            raise CompileError(f"bind of {iv.name} in stage {self.op.name}: only virtual threads "
                               f"('cthread'/'vthread') exist on VTA, got {tag!r}")
        self.binds[iv] = thread


class Schedule:
    """``s = te.create_schedule(C.op)``; ``s[T]`` is the stage of tensor T."""

    def __init__(self, ops):
        ops = ops if isinstance(ops, (list, tuple)) else [ops]
        self.outputs = [op.op if isinstance(op, Tensor) else op for op in ops]
        self.stages: list[Stage] = []
        self._by_op: dict = {}
        for op in _post_order(self.outputs):
            st = Stage(op, self)
            self.stages.append(st)
            self._by_op[op] = st

    def __getitem__(self, t) -> Stage:
        op = t.op if isinstance(t, Tensor) else t
        if op not in self._by_op:
            raise CompileError(f"{getattr(op, 'name', op)} is not part of this schedule")
        return self._by_op[op]

    def cache_read(self, tensor: Tensor, scope: str, readers) -> Tensor:
        """A copy stage of ``tensor`` in ``scope`` read by ``readers`` instead of ``tensor``."""
        readers = [r.op if isinstance(r, Tensor) else r for r in readers]
        cached = compute(tensor.shape, lambda *i: tensor(*i), name=f"{tensor.name}.{scope}")
        for op in readers:
            if not isinstance(op, ComputeOp):
                raise CompileError(f"cache_read: reader {op.name} is not a compute stage")
            self[op].body = _replace_reads(self[op].body, tensor, cached)
        st = Stage(cached.op, self)
        st.scope = scope
        pos = builtin_min(self.stages.index(self[op]) for op in readers)
        self.stages.insert(pos, st)
        self._by_op[cached.op] = st
        return cached


builtin_min = min


def _replace_reads(e, old: Tensor, new: Tensor):
    if isinstance(e, TensorRead):
        idx = tuple(_replace_reads(i, old, new) for i in e.indices)
        return TensorRead(new if e.tensor is old else e.tensor, idx)
    if isinstance(e, Reduce):
        return Reduce(_replace_reads(e.source, old, new), e.axes)
    if isinstance(e, (Var, IntImm)):
        return e
    if isinstance(e, Expr):
        clone = object.__new__(type(e))
        for k, v in e.__dict__.items():
            if isinstance(v, Expr):
                v = _replace_reads(v, old, new)
            elif isinstance(v, tuple) and v and isinstance(v[0], Expr):
                v = tuple(_replace_reads(x, old, new) for x in v)
            clone.__dict__[k] = v
        return clone
    return e


def _post_order(outputs):
    seen, order = set(), []

    def visit(op):
        if op in seen:
            return
        seen.add(op)
        for t in getattr(op, "inputs", []):
            visit(t.op)
        order.append(op)

    for op in outputs:
        visit(op)
    return order

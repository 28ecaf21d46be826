"""The tensor-expression language (the part of ``tvm.te`` VTA kernels use).

Tensors are declared with :func:`placeholder` and :func:`compute`; a :func:`create_schedule`
gives per-stage scheduling primitives (see :mod:`compiler.schedule`).
"""
from __future__ import annotations

import inspect

from .ir import (And, BinOp, Cast, Cmp, CompileError, Expr, IntImm, Select, Var, binop, cast,
                 const)

__all__ = ["placeholder", "compute", "reduce_axis", "sum", "max", "min", "const", "var",
           "thread_axis", "create_schedule", "if_then_else", "all", "Tensor", "IterVar"]


class IterVar:
    """An axis: a variable with a range [min, min+extent); kind 'data', 'reduce' or 'thread'."""

    def __init__(self, dom, name: str, kind: str = "data"):
        lo, hi = (0, dom) if isinstance(dom, int) else dom
        self.min, self.extent = int(lo), int(hi) - int(lo)
        self.var = Var(name)
        self.name, self.kind = name, kind

    @property
    def dom(self):
        return (self.min, self.extent)

    def __repr__(self):
        return f"IterVar({self.name}, [{self.min}, {self.min + self.extent}), {self.kind})"

    # An IterVar is used inside expressions as its variable (te.sum(x * y, axis=k) bodies).
    def _e(self):
        return self.var

    def __add__(self, o): return self.var + o
    def __radd__(self, o): return o + self.var
    def __sub__(self, o): return self.var - o
    def __rsub__(self, o): return o - self.var
    def __mul__(self, o): return self.var * o
    def __rmul__(self, o): return o * self.var


def _expr(x):
    if isinstance(x, IterVar):
        return x.var
    if isinstance(x, Tensor) and len(x.shape) == 0:
        return TensorRead(x, ())
    return x


class TensorRead(Expr):
    """``T[i, j, ...]`` before lowering."""

    def __init__(self, tensor: "Tensor", indices):
        self.tensor = tensor
        self.indices = tuple(const(_expr(i)) for i in indices)
        self.dtype = tensor.dtype

    def __repr__(self):
        return f"{self.tensor.name}[{', '.join(repr(i) for i in self.indices)}]"


class Reduce(Expr):
    """``sum(source, axis=[...])``."""

    def __init__(self, source: Expr, axes):
        self.source, self.axes = source, list(axes)
        self.dtype = source.dtype

    def __repr__(self):
        return f"sum({self.source!r}, axis={[a.name for a in self.axes]})"


class Operation:
    name: str


class PlaceholderOp(Operation):
    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, shape, dtype
        self.axis, self.reduce_axis, self.inputs = [], [], []

    def __repr__(self):
        return f"placeholder({self.name})"


class ComputeOp(Operation):
    def __init__(self, name, axis, body):
        self.name, self.axis, self.body = name, axis, body
        self.reduce_axis = list(body.axes) if isinstance(body, Reduce) else []
        self.shape = tuple(iv.extent for iv in axis)
        self.dtype = body.dtype

    @property
    def inputs(self):
        return _tensors_read(self.body)

    def __repr__(self):
        return f"compute({self.name})"


class Tensor:
    """The (single) output of an operation."""

    def __init__(self, op: Operation):
        self.op = op
        op.output = self

    @property
    def shape(self):
        return self.op.shape

    @property
    def dtype(self):
        return self.op.dtype

    @property
    def name(self):
        return self.op.name

    @property
    def ndim(self):
        return len(self.shape)

    def __getitem__(self, idx):
        if not isinstance(idx, tuple):
            idx = (idx,)
        if len(idx) == 1 and isinstance(idx[0], tuple):   # T[i] where i is the *i tuple
            idx = idx[0]
        if len(idx) != len(self.shape):
            raise CompileError(f"tensor {self.name} has {len(self.shape)} dimensions, indexed with {len(idx)}")
        return TensorRead(self, idx)

    def __call__(self, *idx):
        return self[tuple(idx)]

    def __repr__(self):
        return f"Tensor({self.name}, {self.shape}, {self.dtype})"


def _tensors_read(e, out=None) -> list:
    out = [] if out is None else out
    if isinstance(e, TensorRead):
        if e.tensor not in out:
            out.append(e.tensor)
        for i in e.indices:
            _tensors_read(i, out)
    elif isinstance(e, Expr):
        for v in e.__dict__.values():
            if isinstance(v, Expr):
                _tensors_read(v, out)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    if isinstance(x, Expr):
                        _tensors_read(x, out)
    return out


def placeholder(shape, dtype: str = "float32", name: str = "placeholder") -> Tensor:
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    return Tensor(PlaceholderOp(name, shape, dtype))


def compute(shape, fcompute, name: str = "compute", tag: str = "", attrs=None) -> Tensor:
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    params = list(inspect.signature(fcompute).parameters.values())
    if len(params) == 1 and params[0].kind == inspect.Parameter.VAR_POSITIONAL:
        names = [f"i{k}" for k in range(len(shape))]
    else:
        names = [p.name for p in params]
        if len(names) != len(shape):
            raise CompileError(f"compute {name}: lambda takes {len(names)} indices, shape has {len(shape)} dims")
    axis = [IterVar(n, nm) for n, nm in zip(shape, names)]
    body = const(_expr(fcompute(*[a.var for a in axis])))
    return Tensor(ComputeOp(name, axis, body))


def reduce_axis(dom, name: str = "rv") -> IterVar:
    return IterVar(dom, name, "reduce")


def sum(expr, axis, where=None) -> Reduce:  # noqa: A001 - te.sum, as upstream
    if where is not None:
        raise CompileError("te.sum(where=...) is not supported")
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return Reduce(const(_expr(expr)), axes)


def max(a, b) -> Expr:  # noqa: A001
    return binop("max", _expr(a), _expr(b))


def min(a, b) -> Expr:  # noqa: A001
    return binop("min", _expr(a), _expr(b))


def var(name="v", dtype="int32") -> Var:
    return Var(name, dtype)


def if_then_else(cond, t, f) -> Select:
    t, f = _expr(t), _expr(f)
    t = const(t, f.dtype if isinstance(f, Expr) else "int32")
    return Select(cond, t, const(f, t.dtype))


def all(*conds) -> And:  # noqa: A001
    return And(*conds)


def thread_axis(tag: str = "", name: str = "") -> IterVar:
    iv = IterVar((0, 0), name or tag, "thread")
    iv.thread_tag = tag
    return iv


def create_schedule(ops):
    from .schedule import Schedule
    return Schedule(ops)


__all__ += ["BinOp", "Cast", "Cmp", "IntImm", "cast"]

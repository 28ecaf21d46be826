"""The loop-nest IR the lowering passes rewrite: expressions, statements, flat buffers.

Modelled on TVM's TIR, kept to what VTA kernels need. Indices into flat buffers are
:class:`Affine` (a linear combination of loop variables plus a constant) because every VTA
pattern match (2-D DMA, ALU coefficients, uop loop folding) is a question about coefficients.
"""
from __future__ import annotations

import itertools
from typing import Iterable


class CompileError(ValueError):
    """A schedule the VTA lowering cannot (or must not) compile; the message names the stage,
    the axis or buffer, and the numbers."""


# ---- expressions -------------------------------------------------------------------------

class Expr:
    """Base of every expression; arithmetic operators build trees (the te surface syntax)."""

    dtype = "int32"

    def __add__(self, o): return binop("+", self, o)
    def __radd__(self, o): return binop("+", o, self)
    def __sub__(self, o): return binop("-", self, o)
    def __rsub__(self, o): return binop("-", o, self)
    def __mul__(self, o): return binop("*", self, o)
    def __rmul__(self, o): return binop("*", o, self)
    def __rshift__(self, o): return binop(">>", self, o)
    def __lshift__(self, o): return binop("<<", self, o)
    def __floordiv__(self, o): return binop("//", self, o)
    def __mod__(self, o): return binop("%", self, o)
    def __neg__(self): return binop("-", IntImm(0, self.dtype), self)
    def __lt__(self, o): return Cmp("<", self, const(o, self.dtype))
    def __le__(self, o): return Cmp("<=", self, const(o, self.dtype))
    def __gt__(self, o): return Cmp("<", const(o, self.dtype), self)
    def __ge__(self, o): return Cmp("<=", const(o, self.dtype), self)
    __hash__ = object.__hash__

    def astype(self, dtype: str) -> "Expr":
        return cast(dtype, self)


class Var(Expr):
    """A loop or thread variable; identity is the object."""

    _ids = itertools.count()

    def __init__(self, name: str, dtype: str = "int32"):
        self.name, self.dtype = name, dtype
        self.uid = next(Var._ids)

    def __repr__(self):
        return self.name


class IntImm(Expr):
    def __init__(self, value: int, dtype: str = "int32"):
        self.value, self.dtype = int(value), dtype

    def __repr__(self):
        return str(self.value)


def const(value, dtype="int32") -> Expr:
    if isinstance(value, Expr):
        return value
    if hasattr(value, "_e"):       # a te.IterVar stands for its variable
        return value._e()
    if isinstance(value, bool) or not isinstance(value, int):
        value = int(value)
    return IntImm(value, dtype)


class BinOp(Expr):
    """``op`` in + - * >> << // % max min."""

    def __init__(self, op: str, a: Expr, b: Expr):
        self.op, self.a, self.b = op, a, b
        self.dtype = a.dtype

    def __repr__(self):
        if self.op in ("max", "min"):
            return f"{self.op}({self.a!r}, {self.b!r})"
        return f"({self.a!r} {self.op} {self.b!r})"


def binop(op: str, a, b) -> Expr:
    a, b = (x._e() if hasattr(x, "_e") else x for x in (a, b))
    if not isinstance(a, Expr) and not isinstance(b, Expr):
        raise TypeError("binop needs at least one expression operand")
    a = const(a, b.dtype) if not isinstance(a, Expr) else a
    b = const(b, a.dtype) if not isinstance(b, Expr) else b
    return BinOp(op, a, b)


class Cast(Expr):
    def __init__(self, dtype: str, value: Expr):
        self.dtype, self.value = dtype, value

    def __repr__(self):
        return f"{self.dtype}({self.value!r})"


def cast(dtype: str, value) -> Expr:
    value = const(value, dtype)
    if value.dtype == dtype:   # TVM simplifies same-type casts away (matters for ALU matching)
        return value
    if isinstance(value, IntImm):
        return IntImm(value.value, dtype)
    return Cast(dtype, value)


class Cmp(Expr):
    """``a op b`` with op in < <=; a boolean."""

    dtype = "bool"

    def __init__(self, op: str, a: Expr, b: Expr):
        self.op, self.a, self.b = op, a, b

    def __repr__(self):
        return f"({self.a!r} {self.op} {self.b!r})"


class And(Expr):
    dtype = "bool"

    def __init__(self, *terms: Expr):
        self.terms = terms

    def __repr__(self):
        return " && ".join(repr(t) for t in self.terms)


class Select(Expr):
    """``if_then_else(cond, t, f)`` (padding)."""

    def __init__(self, cond: Expr, t: Expr, f: Expr):
        self.cond, self.t, self.f = cond, t, f
        self.dtype = t.dtype

    def __repr__(self):
        return f"if_then_else({self.cond!r}, {self.t!r}, {self.f!r})"


class Load(Expr):
    """A read of a flat buffer at an affine index (scalar units)."""

    def __init__(self, buffer: "Buffer", index: "Affine"):
        self.buffer, self.index = buffer, index
        self.dtype = buffer.dtype

    def __repr__(self):
        return f"{self.buffer.name}[{self.index!r}]"


class Call(Expr):
    """An intrinsic or runtime call (``VTALoadBuffer2D``, ``vta.uop_push``, dep push/pop...)."""

    def __init__(self, name: str, args: Iterable):
        self.name, self.args = name, list(args)

    def __repr__(self):
        return f"{self.name}({', '.join(repr(a) for a in self.args)})"


class Affine(Expr):
    """Σ coeff·var + const, with int coefficients; immutable by convention."""

    __slots__ = ("terms", "const")

    def __init__(self, terms: dict | None = None, const_: int = 0):
        self.terms = {v: c for v, c in (terms or {}).items() if c}
        self.const = int(const_)

    @staticmethod
    def of(x) -> "Affine":
        if isinstance(x, Affine):
            return x
        if isinstance(x, Var):
            return Affine({x: 1})
        return Affine({}, int(x))

    def __add__(self, o):
        if not isinstance(o, (Affine, Var, int)):
            return binop("+", self, o)
        o = Affine.of(o)
        t = dict(self.terms)
        for v, c in o.terms.items():
            t[v] = t.get(v, 0) + c
        return Affine(t, self.const + o.const)

    __radd__ = __add__

    def __sub__(self, o):
        if not isinstance(o, (Affine, Var, int)):
            return binop("-", self, o)
        return self + Affine.of(o).scale(-1)

    def scale(self, k: int) -> "Affine":
        return Affine({v: c * k for v, c in self.terms.items()}, self.const * k)

    def __mul__(self, o):
        if isinstance(o, int):
            return self.scale(o)
        return binop("*", self, o)

    __rmul__ = __mul__

    def coeff(self, v: Var) -> int:
        return self.terms.get(v, 0)

    def drop(self, vars_) -> "Affine":
        return Affine({v: c for v, c in self.terms.items() if v not in vars_}, self.const)

    def subst(self, mapping: dict) -> "Affine":
        """Replace variables by affines (or ints)."""
        out = Affine({}, self.const)
        for v, c in self.terms.items():
            out = out + (Affine.of(mapping[v]).scale(c) if v in mapping else Affine({v: c}))
        return out

    def is_const(self) -> bool:
        return not self.terms

    def divisible(self, k: int) -> bool:
        return self.const % k == 0 and all(c % k == 0 for c in self.terms.values())

    def div_exact(self, k: int) -> "Affine":
        return Affine({v: c // k for v, c in self.terms.items()}, self.const // k)

    def same_terms(self, o: "Affine") -> bool:
        return self.terms == o.terms

    def __eq__(self, o):
        return isinstance(o, Affine) and self.terms == o.terms and self.const == o.const

    __hash__ = None

    def __repr__(self):
        parts = []
        for v, c in sorted(self.terms.items(), key=lambda kv: kv[0].uid):
            parts.append(v.name if c == 1 else f"{v.name}*{c}")
        if self.const or not parts:
            parts.append(str(self.const))
        return " + ".join(parts).replace("+ -", "- ")


def to_affine(e) -> Affine | None:
    """The affine form of an integer expression, or None if it is not affine."""
    if isinstance(e, int):
        return Affine({}, e)
    if isinstance(e, Affine):
        return e
    if isinstance(e, Var):
        return Affine({e: 1})
    if isinstance(e, IntImm):
        return Affine({}, e.value)
    if isinstance(e, Cast) and e.dtype.startswith("int"):
        return to_affine(e.value)
    if isinstance(e, BinOp) and e.op in "+-*":
        a, b = to_affine(e.a), to_affine(e.b)
        if a is None or b is None:
            return None
        if e.op == "+":
            return a + b
        if e.op == "-":
            return a - b
        if a.is_const():
            return b.scale(a.const)
        if b.is_const():
            return a.scale(b.const)
    return None


def free_vars(node, out: set | None = None) -> set:
    """Variables read anywhere in an expression or statement tree (binding loops excluded)."""
    out = set() if out is None else out
    bound: set = set()
    _collect(node, out, bound)
    return out - bound


def _collect(n, out, bound):
    if isinstance(n, Var):
        out.add(n)
    elif isinstance(n, Affine):
        out.update(n.terms)
    elif isinstance(n, (list, tuple)):
        for x in n:
            _collect(x, out, bound)
    elif isinstance(n, For):
        bound.add(n.var)
        _collect(n.body, out, bound)
    elif isinstance(n, (Expr, Stmt)):
        for x in n.__dict__.values():
            if isinstance(x, (Expr, Stmt, list, tuple)):
                _collect(x, out, bound)


# ---- buffers -----------------------------------------------------------------------------

class Buffer:
    """A flat buffer: a DRAM argument (scope 'global') or an SRAM allocation."""

    def __init__(self, name: str, dtype: str, extent: int, scope: str = "global", shape=None):
        self.name, self.dtype, self.extent, self.scope = name, dtype, int(extent), scope
        self.shape = tuple(shape) if shape is not None else (int(extent),)

    @property
    def bits(self) -> int:
        return int(self.dtype.lstrip("uint").lstrip("int") or 32)

    def __repr__(self):
        return self.name


# ---- statements --------------------------------------------------------------------------

class Stmt:
    __hash__ = object.__hash__


class For(Stmt):
    def __init__(self, var: Var, extent: int, body: Stmt):
        self.var, self.extent, self.body = var, int(extent), body


class Seq(Stmt):
    def __init__(self, stmts):
        self.stmts = list(stmts)


class Attr(Stmt):
    """``attr key = value { body }``: coproc_scope, coproc_uop_scope, virtual_thread,
    pragma_<name>, storage_scope. ``node`` is what the attribute is about (an IterVar/Var)."""

    def __init__(self, key: str, value, body: Stmt, node=None):
        self.key, self.value, self.body, self.node = key, value, body, node


class Allocate(Stmt):
    def __init__(self, buffer: Buffer, body: Stmt):
        self.buffer, self.body = buffer, body


class Store(Stmt):
    def __init__(self, buffer: Buffer, index: Affine, value: Expr):
        self.buffer, self.index, self.value = buffer, index, value


class Evaluate(Stmt):
    def __init__(self, call: Call):
        self.call = call


def seq(*stmts) -> Stmt:
    """Flatten nested sequences; a one-element sequence is its element."""
    flat: list = []
    for s in stmts:
        if s is None:
            continue
        if isinstance(s, (list, tuple)):
            s = seq(*s)
            if s is None:
                continue
        if isinstance(s, Seq):
            flat.extend(s.stmts)
        else:
            flat.append(s)
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else Seq(flat)


def evaluate(name: str, *args) -> Evaluate:
    return Evaluate(Call(name, args))


def loops_of(stmt: Stmt):
    """Yield every For in a tree (pre-order)."""
    if isinstance(stmt, For):
        yield stmt
        yield from loops_of(stmt.body)
    elif isinstance(stmt, Seq):
        for s in stmt.stmts:
            yield from loops_of(s)
    elif isinstance(stmt, (Attr, Allocate)):
        yield from loops_of(stmt.body)


class SramPtr(Expr):
    """``buffer.access_ptr()`` of an SRAM buffer at a scalar offset; becomes an element index
    in ``lower_storage_access`` (TVM's LowerDeviceStorageAccessInfo)."""

    def __init__(self, buffer: Buffer, index: Affine):
        self.buffer, self.index = buffer, index

    def with_index(self, index):
        return SramPtr(self.buffer, index)

    def __repr__(self):
        return f"&{self.buffer.name}[{self.index!r}]"


class BufArg(Expr):
    """A DRAM argument buffer passed to a runtime call (its handle)."""

    def __init__(self, buffer: Buffer):
        self.buffer = buffer

    def __repr__(self):
        return self.buffer.name

"""A generic rewriter for IR trees: rebuild a tree bottom-up with per-node callbacks."""
from __future__ import annotations

from ..ir import (Affine, Allocate, And, Attr, BinOp, Call, Cast, Cmp, Evaluate, Expr, For, Load,
                  Select, Seq, SramPtr, Store, seq)


def map_expr(e, f):
    """Rebuild expression ``e`` bottom-up; ``f(node)`` returns a replacement or None."""
    if isinstance(e, BinOp):
        a, b = map_expr(e.a, f), map_expr(e.b, f)
        e = e if (a is e.a and b is e.b) else _binop(e.op, a, b)
    elif isinstance(e, Cast):
        v = map_expr(e.value, f)
        e = e if v is e.value else Cast(e.dtype, v)
    elif isinstance(e, Cmp):
        e = Cmp(e.op, map_expr(e.a, f), map_expr(e.b, f))
    elif isinstance(e, And):
        e = And(*[map_expr(t, f) for t in e.terms])
    elif isinstance(e, Select):
        e = Select(map_expr(e.cond, f), map_expr(e.t, f), map_expr(e.f, f))
    elif isinstance(e, Call):
        e = Call(e.name, [map_expr(a, f) if isinstance(a, Expr) else a for a in e.args])
    r = f(e)
    return e if r is None else r


def _binop(op, a, b):
    from ..ir import to_affine
    n = BinOp(op, a, b)
    if op in "+-*":
        aff = to_affine(n)
        if aff is not None:
            return aff
    return n


def map_stmt(s, fstmt=None, fexpr=None):
    """Rebuild statement ``s`` bottom-up. ``fstmt(node)`` may return a replacement statement
    (or None to keep); ``fexpr`` is applied to every expression."""
    if s is None:
        return None
    fe = (lambda e: map_expr(e, fexpr)) if fexpr else (lambda e: e)
    if isinstance(s, For):
        s = For(s.var, s.extent, map_stmt(s.body, fstmt, fexpr))
    elif isinstance(s, Seq):
        s = seq(*[map_stmt(x, fstmt, fexpr) for x in s.stmts])
    elif isinstance(s, Attr):
        n = Attr(s.key, s.value, map_stmt(s.body, fstmt, fexpr), s.node)
        n.site = getattr(s, "site", None)
        s = n
    elif isinstance(s, Allocate):
        s = Allocate(s.buffer, map_stmt(s.body, fstmt, fexpr))
    elif isinstance(s, Store):
        s = Store(s.buffer, fe(s.index), fe(s.value))
    elif isinstance(s, Evaluate):
        s = Evaluate(fe(s.call))
    if fstmt is not None and s is not None:
        r = fstmt(s)
        if r is not None:
            return r
    return s


def substitute(s, mapping: dict):
    """Replace variables (by Affine/int) in every index and expression of a tree."""
    from ..ir import Var

    def f(e):
        if isinstance(e, Affine):
            if any(v in mapping for v in e.terms):
                return e.subst(mapping)
        elif isinstance(e, Var) and e in mapping:
            return Affine.of(mapping[e])
        elif isinstance(e, Load):
            return Load(e.buffer, e.index.subst(mapping)) if any(v in mapping for v in e.index.terms) else None
        elif isinstance(e, SramPtr):
            return e.with_index(e.index.subst(mapping))
        return None

    def fs(st):
        if isinstance(st, Store) and any(v in mapping for v in st.index.terms):
            return Store(st.buffer, st.index.subst(mapping), st.value)
        return None

    if isinstance(s, Expr):
        return map_expr(s, f)
    return map_stmt(s, fs, f)




def rewrite_pragma(stmt, key: str, rewrite):
    """Replace every ``attr [axis] key`` statement by ``rewrite(body, axis_name)``."""

    def f(s):
        if isinstance(s, Attr) and s.key == key:
            return rewrite(s.body, getattr(s.node, "name", "?"))
        return None

    return map_stmt(stmt, f)


def perfect_nest(body):
    """The (var, extent) loops of a perfect loop nest, outer first, and the statement inside."""
    loops = []
    while isinstance(body, For):
        loops.append((body.var, body.extent))
        body = body.body
    return loops, body

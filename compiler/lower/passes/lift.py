"""LiftAttrScope: hoist ``coproc_uop_scope`` / ``coproc_scope`` attributes outward.

An attribute covering a loop's whole body moves outside the loop; adjacent statements of a
sequence with the *same* attribute share one; an allocation stops the lift (upstream
``lift_attr_scope.cc``). Sameness follows upstream: queue ids compare by value, uop-scope
names by identity (so only GEMM scopes, which share one name object, ever merge).
"""
from __future__ import annotations

from ...ir import Allocate, Attr, For, Seq, seq


def _same(a: Attr, b: Attr) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a.value, int) and isinstance(b.value, int):
        return a.value == b.value
    return a.value is b.value


def _wrap(a: Attr, body):
    return Attr(a.key, a.value, body, a.node)


def lift_attr_scope(stmt, key: str):
    def visit(s):
        if isinstance(s, Attr):
            if s.key == key:
                return s.body, s
            body, a = visit(s.body)
            return Attr(s.key, s.value, body, s.node), a
        if isinstance(s, For):
            body, a = visit(s.body)
            return For(s.var, s.extent, body), a
        if isinstance(s, Allocate):
            body, a = visit(s.body)
            return Allocate(s.buffer, _wrap(a, body) if a is not None else body), None
        if isinstance(s, Seq):
            parts = [visit(x) for x in s.stmts]
            out, begin = [], 0
            while begin < len(parts):
                end = begin + 1
                while end < len(parts) and _same(parts[end][1], parts[begin][1]):
                    end += 1
                if begin == 0 and end == len(parts):
                    return seq(*[p for p, _ in parts]), parts[0][1]
                body = seq(*[p for p, _ in parts[begin:end]])
                a = parts[begin][1]
                out.append(_wrap(a, body) if a is not None else body)
                begin = end
            return seq(*out), None
        return s, None

    body, a = visit(stmt)
    return _wrap(a, body) if a is not None else body


def lift_uop_scope(stmt, ctx):
    return lift_attr_scope(stmt, "coproc_uop_scope")


def lift_coproc_scope(stmt, ctx):
    return lift_attr_scope(stmt, "coproc_scope")

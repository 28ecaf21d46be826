"""Uop loop folding (vta-spec §6.6): the outer (up to two) loops of a GEMM uop scope become the
GEMM instruction's hardware loops when every uop's indices are affine in the loop variable with
one common coefficient each."""
from __future__ import annotations

from ...ir import Affine, Attr, Call, Evaluate, For, free_vars, seq
from ..schedule_ops import GEMM_UOP_SCOPE
from ..visit import map_stmt


class _NoFold(Exception):
    pass


def _fold_outermost(body):
    if not isinstance(body, For):
        return None, body, None
    var = body.var
    coeffs = [None, None, None]

    def fcall(s):
        if isinstance(s, Evaluate) and s.call.name == "vta.uop_push":
            args = list(s.call.args)
            for i in range(3):
                a = Affine.of(args[2 + i])
                c = a.coeff(var)
                if coeffs[i] is None:
                    coeffs[i] = c
                elif coeffs[i] != c:
                    raise _NoFold()
                args[2 + i] = a.drop([var])
            return Evaluate(Call(s.call.name, args))
        return None

    new = map_stmt(body.body, fcall)
    if any(c is None for c in coeffs) or var in free_vars(new):
        raise _NoFold()
    return (Evaluate(Call("VTAUopLoopBegin", [body.extent] + coeffs)), new,
            Evaluate(Call("VTAUopLoopEnd", [])))


def fold_uop_loop(stmt, ctx):
    def f(s):
        if not (isinstance(s, Attr) and s.key == "coproc_uop_scope" and s.value is GEMM_UOP_SCOPE):
            return None
        begins, ends, body = [], [], s.body
        for _ in range(2):
            try:
                b, body, e = _fold_outermost(body)
            except _NoFold:
                break
            if b is None:
                break
            begins.append(b)
            ends.append(e)
        if not begins:
            return None
        return Attr(s.key, s.value, seq(*begins, body, *reversed(ends)), s.node)

    return map_stmt(stmt, f)

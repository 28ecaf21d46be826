"""SRAM access pointers → element indices (TVM's LowerDeviceStorageAccessInfo), and the
capacity check of every SRAM scope against the configured buffer sizes."""
from __future__ import annotations

from ...ir import Allocate, Attr, CompileError, For, Seq, SramPtr
from ..visit import map_stmt


def _scopes(env):
    return {env.inp_scope: ("inp", env.BATCH * env.BLOCK_IN, env.INP_BUFF_SIZE),
            env.wgt_scope: ("wgt", env.BLOCK_OUT * env.BLOCK_IN, env.WGT_BUFF_SIZE),
            env.acc_scope: ("acc", env.BATCH * env.BLOCK_OUT, env.ACC_BUFF_SIZE)}


def lower_storage_access(stmt, ctx):
    scopes = _scopes(ctx.env)

    def fexpr(e):
        if isinstance(e, SramPtr):
            if e.buffer.scope not in scopes:
                raise CompileError(f"buffer {e.buffer.name} is used by VTA but lives in scope {e.buffer.scope!r} "
                                   f"(missing set_scope?)")
            lanes = scopes[e.buffer.scope][1]
            if not e.index.divisible(lanes):
                raise CompileError(f"access to {e.buffer.name} at {e.index!r} is not aligned to an SRAM element "
                                   f"({lanes} scalars)")
            return e.index.div_exact(lanes)
        return None

    return map_stmt(stmt, None, fexpr)


def check_allocations(stmt, ctx):
    """Refuse programs whose live SRAM allocations exceed a buffer (TVM: 'Allocation exceed
    bound of memory tag')."""
    scopes = _scopes(ctx.env)

    def walk(s, used):
        if isinstance(s, Allocate):
            b = s.buffer
            if b.scope in scopes:
                name, _, cap = scopes[b.scope]
                need = used.get(b.scope, 0) + b.extent * b.bits // 8
                if need > cap:
                    parts = ", ".join(getattr(b, "parts", [b.name]))
                    raise CompileError(f"{name} buffer needs {need} B for {parts}, has {cap} B")
                used = dict(used, **{b.scope: need})
            elif b.scope != "global":
                raise CompileError(f"buffer {b.name} has unknown scope {b.scope!r}")
            walk(s.body, used)
        elif isinstance(s, Seq):
            for x in s.stmts:
                walk(x, used)
        elif isinstance(s, (For, Attr)):
            walk(s.body, used)

    walk(stmt, {})
    return stmt

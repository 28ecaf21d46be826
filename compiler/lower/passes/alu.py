"""``alu`` pragma → ALU uop kernels (vta-spec §6.5).

``annotate_alu_coproc_scope`` wraps each ALU nest in the compute queue and a fresh
``coproc_uop_scope`` (phase 1); ``inject_alu_intrin`` (phase 2, after virtual threads) turns the
nest into ``VTAUopLoopBegin``/``vta.uop_push``/``VTAUopLoopEnd`` calls.
"""
from __future__ import annotations

from ...ir import (Affine, Attr, BinOp, Call, CompileError, Evaluate, IntImm, Load, Store, seq,
                   to_affine)
from ..schedule_ops import ScopeName
from ...isa import ALU_ADD, ALU_MAX, ALU_MIN, ALU_MUL, ALU_SHR
from ..visit import map_stmt, perfect_nest, rewrite_pragma



def annotate_alu_coproc_scope(stmt, ctx):
    key = "pragma_" + ctx.env.alu

    def f(s):
        if isinstance(s, Attr) and s.key == key:
            return Attr("coproc_scope", 2, Attr("coproc_uop_scope", ScopeName("VTAPushALUOp"), s))
        return None

    return map_stmt(stmt, f)


def inject_alu_intrin(stmt, ctx):
    return rewrite_pragma(stmt, "pragma_" + ctx.env.alu, lambda body, axis: _inject(body, ctx.env, axis))


def _inject(body, env, axis):
    loops, body = perfect_nest(body)
    if not isinstance(body, Store):
        raise CompileError(f"alu pragma at axis {axis}: the nest must be a perfect loop nest around one store")
    dst, dst_idx, value = body.buffer, body.index, body.value
    stage = dst.name
    if dst.scope != env.acc_scope:
        raise CompileError(f"alu stage {stage}: result must live in {env.acc_scope}, scope is {dst.scope!r} "
                           f"(missing set_scope?)")
    opcode, lhs, rhs = _opcode(value, stage)
    vars_ = [v for v, _ in loops]
    imm = None
    if isinstance(rhs, int):
        src, imm = _operand(lhs, dst, stage), rhs
    elif isinstance(lhs, int):
        src, imm = _operand(rhs, dst, stage), lhs
    else:
        a, b = _operand(lhs, dst, stage), _operand(rhs, dst, stage)
        if _coeffs(a, vars_) == _coeffs(dst_idx, vars_):
            src = b
        elif _coeffs(b, vars_) == _coeffs(dst_idx, vars_):
            src = a
        else:
            raise CompileError(f"alu stage {stage}: neither operand is computed in place (same index as the result "
                               f"{dst_idx!r}): {a!r}, {b!r}")
    lanes = env.BATCH * env.BLOCK_OUT
    extents = [e for _, e in loops]
    dst_c, src_c = _coeffs(dst_idx, vars_), _coeffs(src, vars_)
    ok = len(extents) >= 1 and dst_c[-2] == 1 and src_c[-2] == 1 and extents[-1] == env.BLOCK_OUT
    if ok and env.BATCH > 1:
        ok = len(extents) >= 2 and dst_c[-3] == env.BLOCK_OUT and src_c[-3] == env.BLOCK_OUT
    drop = 1 if env.BATCH == 1 else 2
    if not ok:
        raise CompileError(f"alu stage {stage}: the innermost loops must walk the {lanes} lanes of one acc element "
                           f"with stride 1 (extents {extents}, dst coefficients {dst_c[:-1]})")
    d_off, s_off = dst_c[-1], src_c[-1]
    dst_c, src_c, extents = dst_c[:-1 - drop], src_c[:-1 - drop], extents[:-drop]
    for name, c in (("result", dst_c + [d_off]), ("operand", src_c + [s_off])):
        for x in c:
            if not (x.divisible(lanes) if isinstance(x, Affine) else x % lanes == 0):
                raise CompileError(f"alu stage {stage}: {name} index {x!r} is not a whole acc element "
                                   f"({lanes} lanes)")
    dst_c = [c // lanes for c in dst_c]
    src_c = [c // lanes for c in src_c]
    d_off, s_off = d_off.div_exact(lanes), s_off.div_exact(lanes)
    if extents:
        src_c, dst_c, extents = _flatten(src_c, dst_c, extents)
    stmts = [Evaluate(Call("VTAUopLoopBegin", [e, d, s, 0])) for e, d, s in zip(extents, dst_c, src_c)]
    use_imm = 1 if imm is not None else 0
    stmts.append(Evaluate(Call("vta.uop_push", [1, 0, d_off, s_off, 0, opcode, use_imm, imm or 0])))
    stmts += [Evaluate(Call("VTAUopLoopEnd", [])) for _ in extents]
    return seq(*stmts)


def _opcode(value, stage):
    if isinstance(value, Load):
        return ALU_SHR, value, 0
    if isinstance(value, BinOp):
        a, b = _imm(value.a), _imm(value.b)
        if value.op == "+":
            return ALU_ADD, a, b
        if value.op == "*":
            return ALU_MUL, a, b
        if value.op == "min":
            return ALU_MIN, a, b
        if value.op == "max":
            return ALU_MAX, a, b
        if value.op == ">>":
            return ALU_SHR, a, b
        if value.op == "<<":
            if not isinstance(b, int):
                raise CompileError(f"alu stage {stage}: shift left needs a constant amount")
            return ALU_SHR, a, -b
    aff = to_affine(value) if not isinstance(value, Load) else None
    if aff is not None and aff.is_const():
        raise CompileError(f"alu stage {stage}: a constant fill ({aff.const}) is not an ALU operation")
    raise CompileError(f"alu stage {stage}: expression not recognized by the VTA ALU (supported: + * min max >> << "
                       f"and copy): {value!r}")


def _imm(e):
    if isinstance(e, IntImm):
        return e.value
    if isinstance(e, Affine) and e.is_const():
        return e.const
    return e


def _operand(e, dst, stage):
    if not isinstance(e, Load):
        raise CompileError(f"alu stage {stage}: operand {e!r} is not a load from the accumulator")
    if e.buffer is not dst:
        raise CompileError(f"alu stage {stage}: operand {e.buffer.name} is not in the same accumulator buffer as the "
                           f"result {dst.name} (its scope is {e.buffer.scope})")
    return e.index


def _coeffs(idx, vars_):
    """Coefficients of the loop variables then the rest (an Affine of enclosing variables)."""
    return [idx.coeff(v) for v in vars_] + [idx.drop(vars_)]


def _flatten(src_c, dst_c, extents):
    """Merge adjacent loops (inner to outer) whose strides continue each other, as upstream."""
    src_c, dst_c, extents = list(src_c), list(dst_c), list(extents)
    rs, rd, re = [], [], []
    vs, vd, ve = src_c.pop(), dst_c.pop(), extents.pop()
    while src_c:
        ns, nd, ne = src_c.pop(), dst_c.pop(), extents.pop()
        if ns == vs * ve and nd == vd * ve:
            ve *= ne
        else:
            rs.append(vs)
            rd.append(vd)
            re.append(ve)
            vs, vd, ve = ns, nd, ne
    rs.append(vs)
    rd.append(vd)
    re.append(ve)
    return rs[::-1], rd[::-1], re[::-1]

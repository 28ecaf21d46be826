"""``dma_copy`` pragma → ``VTALoadBuffer2D`` / ``VTAStoreBuffer2D`` (vta-spec §6.4).

The copy nest under the pragma must be a perfect affine loop nest storing one (possibly cast or
padded) load. Its DRAM side is folded into at most a 2-D block of whole SRAM elements; the SRAM
side must be compact. Padding (``if_then_else`` from ``topi.nn.pad``) becomes the DMA's zero
padding, with pads that may depend on the enclosing loops.
"""
from __future__ import annotations

from ...ir import (Affine, And, Attr, BinOp, BufArg, Cast, Cmp, CompileError, Evaluate, Call, IntImm, Load,
                   Select, SramPtr, Store, to_affine)
from ...isa import MEM_ACC, MEM_ACC_8BIT, MEM_INP, MEM_OUT, MEM_WGT
from ..visit import perfect_nest, rewrite_pragma



def inject_dma_intrin(stmt, ctx):
    return rewrite_pragma(stmt, "pragma_" + ctx.env.dma_copy, lambda body, axis: _inject_copy(body, ctx.env, axis))


def _inject_copy(body, env, axis):
    loops, body = perfect_nest(body)
    if not isinstance(body, Store):
        raise CompileError(f"dma_copy at axis {axis}: cannot match copy pattern (the nest is not a perfect loop nest "
                           f"around one store)")
    dst, dst_idx, value = body.buffer, body.index, body.value
    stage = dst.name
    if isinstance(value, Cast):
        value = value.value
    cond = None
    if isinstance(value, Select):
        cond, value = value.cond, value.t
        if isinstance(value, Cast):
            value = value.value
    if not isinstance(value, Load):
        raise CompileError(f"dma_copy of {stage} at axis {axis}: cannot match copy pattern (value {value!r} is not a "
                           f"plain load)")
    src, src_idx = value.buffer, value.index
    vars_ = [v for v, _ in loops]
    extents = [e for _, e in loops]
    dst_strides = [dst_idx.coeff(v) for v in vars_]
    src_strides = [src_idx.coeff(v) for v in vars_]
    dst_off = dst_idx.drop(vars_)
    src_off = src_idx.drop(vars_)
    src_shape: list = list(extents)
    pads = None
    if cond is not None:
        pads = _pads(cond, vars_, extents, stage)
        for d, (pb, pa) in enumerate(pads):
            if pb is not None:
                src_shape[d] = _sub(_sub(src_shape[d], pb), pa)
    is_load = src.scope == "global"
    if is_load == (dst.scope == "global"):
        raise CompileError(f"dma_copy of {stage}: do not support copy from {src.name} ({src.scope}) to {dst.name} "
                           f"({dst.scope}); one side must be DRAM and the other an SRAM scope (missing set_scope?)")
    if is_load:
        scope = dst.scope
        if scope == env.acc_scope:
            mem, queue, width, nbytes = MEM_ACC, 2, env.ACC_WIDTH, env.ACC_ELEM_BYTES
            if src.dtype == env.inp_dtype and env.acc_dtype != env.inp_dtype:
                mem = MEM_ACC_8BIT
            elif src.dtype != env.acc_dtype:
                raise CompileError(f"dma_copy of {stage}: {src.name} is {src.dtype}, the acc buffer loads "
                                   f"{env.acc_dtype} (or {env.inp_dtype})")
        elif scope in (env.inp_scope, env.wgt_scope):
            inp = scope == env.inp_scope
            mem, queue = (MEM_INP, 1) if inp else (MEM_WGT, 1)
            width, nbytes = (env.INP_WIDTH, env.INP_ELEM_BYTES) if inp else (env.WGT_WIDTH, env.WGT_ELEM_BYTES)
            want = env.inp_dtype if inp else env.wgt_dtype
            if src.dtype != want:
                raise CompileError(f"dma_copy of {stage}: {src.name} is {src.dtype}, {scope} holds {want}")
        else:
            raise CompileError(f"dma_copy of {stage}: do not support copy into scope {scope!r} (missing set_scope?)")
        _check_compact(extents, dst_strides, stage)
        x, y, xs, off = _pattern_2d(src_shape, src_strides, src_off, pads, width, nbytes, stage, axis)
        xpb = ypb = xpa = ypa = 0
        if pads is not None:
            xpb, ypb, xpa, ypa = _pick_pads(pads, extents, stage)
        call = Call("VTALoadBuffer2D", [BufArg(src), off, x, y, xs, xpb, ypb, xpa, ypa, SramPtr(dst, dst_off), mem])
    else:
        if pads is not None:
            raise CompileError(f"dma_copy of {stage}: padding is only supported on loads")
        if src.scope != env.acc_scope:
            raise CompileError(f"dma_copy of {stage}: do not support copy from {src.scope} to DRAM (only the acc "
                               f"buffer is stored)")
        if dst.dtype != env.out_dtype:
            raise CompileError(f"dma_copy of {stage}: stores write {env.out_dtype}, {dst.name} is {dst.dtype}")
        queue = 3
        _check_compact(extents, src_strides, stage)
        x, y, xs, off = _pattern_2d(extents, dst_strides, dst_off, None, env.OUT_WIDTH, env.OUT_ELEM_BYTES, stage, axis)
        call = Call("VTAStoreBuffer2D", [SramPtr(src, src_off), MEM_OUT, BufArg(dst), off, x, y, xs])
    return Attr("coproc_scope", queue, Evaluate(call))


def _sub(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a - b
    return BinOp("-", _e(a), _e(b))


def _e(x):
    return IntImm(x) if isinstance(x, int) else x


def _pads(cond, vars_, extents, stage):
    """Per loop: (pad_before, pad_after) expressions from the clip condition (None: no clip)."""
    terms = cond.terms if isinstance(cond, And) else (cond,)
    lo = {v: [] for v in vars_}
    hi = {v: [] for v in vars_}
    for t in terms:
        if not isinstance(t, Cmp):
            raise CompileError(f"dma_copy of {stage}: unsupported padding condition {t!r}")
        a, b = to_affine(t.a), to_affine(t.b)
        if a is None or b is None:
            raise CompileError(f"dma_copy of {stage}: padding condition {t!r} is not affine")
        diff = b - a if t.op == "<=" else b - a - Affine({}, 1)      # diff >= 0
        used = [v for v in vars_ if diff.coeff(v)]
        if len(used) != 1 or abs(diff.coeff(used[0])) != 1:
            raise CompileError(f"dma_copy of {stage}: padding condition {t!r} must bound one copy loop")
        v = used[0]
        rest = diff.drop([v])
        if diff.coeff(v) == 1:
            lo[v].append(rest.scale(-1))        # v >= -rest
        else:
            hi[v].append(rest)                  # v <= rest
    out = []
    for v, ext in zip(vars_, extents):
        if not lo[v] and not hi[v]:
            out.append((None, None))
            continue
        lower = _fold("max", lo[v]) if lo[v] else IntImm(0)
        upper = _fold("min", hi[v]) if hi[v] else IntImm(ext - 1)
        pb = _clamp0(lower)
        pa = _clamp0(Affine({}, ext - 1) - upper if isinstance(upper, Affine) else BinOp("-", IntImm(ext - 1), upper))
        out.append((pb, pa))
    return out


def _fold(op, items):
    e = items[0]
    for x in items[1:]:
        e = BinOp(op, e, x)
    return e


def _clamp0(e):
    if isinstance(e, Affine) and e.is_const():
        return max(e.const, 0)
    return BinOp("max", e, IntImm(0))


def _pick_pads(pads, extents, stage):
    ndim = len(pads)
    if ndim <= 2 or ndim > 5:
        raise CompileError(f"dma_copy of {stage}: padded loads need 3 to 5 copy dimensions, got {ndim}")
    y, x = (1, 2) if ndim == 5 else (0, 1)
    for d in range(x + 1, ndim):
        if pads[d][0] is not None:
            raise CompileError(f"dma_copy of {stage}: do not support pad on the innermost block (dimension {d})")
    z = lambda p: 0 if p is None else p  # noqa: E731
    return z(pads[x][0]), z(pads[y][0]), z(pads[x][1]), z(pads[y][1])


def _check_compact(shape, strides, stage):
    size = 1
    for n, s in zip(reversed(shape), reversed(strides)):
        if s != size:
            raise CompileError(f"dma_copy of {stage}: cannot prove compact on the SRAM side: shape={list(shape)}, "
                               f"strides={list(strides)}")
        size *= n


def _pattern_2d(shape, strides, offset: Affine, pads, elem_width, elem_bytes, stage, axis):
    """(x_size, y_size, x_stride, element offset) of a DRAM view, as upstream's _get_2d_pattern."""
    block = elem_bytes * 8 // elem_width
    if not offset.divisible(block):
        raise CompileError(f"dma_copy of {stage}: DRAM offset {offset!r} is not a multiple of the element "
                           f"({block} scalars)")
    off_elems = offset.div_exact(block)
    if pads is not None:
        extra = None
        for (pb, _), stride in zip(pads, strides):
            if pb is None or (isinstance(pb, int) and pb == 0):
                continue
            if stride % block:
                raise CompileError(f"dma_copy of {stage}: padded dimension stride {stride} is not a multiple of the "
                                   f"element ({block})")
            term = BinOp("*", _e(pb), IntImm(stride // block)) if not isinstance(pb, int) else Affine({}, pb * stride // block)
            extra = term if extra is None else BinOp("+", extra, term)
        offset_expr = off_elems if extra is None else BinOp("+", off_elems, extra)
    else:
        shape, strides = _fold_dims(list(shape), list(strides), block, stage)
        offset_expr = off_elems
    err = CompileError(f"dma_copy of {stage} at axis {axis}: cannot detect 2d pattern with elem_block={block}: "
                       f"shape={list(shape)}, strides={list(strides)}")
    ndim = len(shape)
    if ndim == 0:
        raise err
    if isinstance(shape[-1], int) and shape[-1] == block:
        if strides[-1] != 1:
            raise err
        if ndim == 1:
            return 1, 1, 1, offset_expr
        if strides[-2] != block:
            raise err
        if ndim == 2:
            return shape[-2], 1, shape[-2], offset_expr
        if strides[-3] % block:
            raise err
        if ndim == 3:
            return shape[-2], shape[-3], strides[-3] // block, offset_expr
    else:
        if not isinstance(shape[-1], int):
            raise CompileError(f"dma_copy of {stage}: do not support pad on the innermost block")
        if strides[-1] != 1 or ndim < 2 or strides[-2] != shape[-1] or shape[-1] * _int(shape[-2], err) != block:
            raise err
        if ndim == 2:
            return 1, 1, 1, offset_expr
        if strides[-3] != block:
            raise err
        if ndim == 3:
            return shape[-3], 1, shape[-3], offset_expr
        if strides[-4] % block:
            raise err
        if ndim == 4:
            return shape[-3], shape[-4], strides[-4] // block, offset_expr
    raise err


def _int(x, err):
    if not isinstance(x, int):
        raise err
    return x


def _fold_dims(shape, strides, block, stage):
    ndim = len(shape)
    size, base = 1, 0
    for i in range(1, ndim + 1):
        if strides[ndim - i] != size:
            raise CompileError(f"dma_copy of {stage}: the SRAM element ({block} scalars) is not contiguous in DRAM: "
                               f"shape={shape}, strides={strides}")
        size *= shape[ndim - i]
        if size == block:
            base = i + 1
            break
    if base == 0:
        raise CompileError(f"dma_copy of {stage}: the innermost copy dimensions do not form whole elements of "
                           f"{block} scalars: shape={shape}, strides={strides}")
    new_shape, new_strides = [block], [1]
    if base < ndim + 1 and strides[ndim - base] != block:
        new_shape.append(1)
        new_strides.append(block)
    while base < ndim + 1:
        size = 1
        stride = strides[ndim - base]
        nxt = base
        if stride % block:
            raise CompileError(f"dma_copy of {stage}: DRAM stride {stride} is not a multiple of the element "
                               f"({block} scalars): shape={shape}, strides={strides}")
        for i in range(base, ndim + 1):
            k = ndim - i
            if size * stride != strides[k]:
                break
            size *= shape[k]
            nxt = i + 1
        new_shape.append(size)
        new_strides.append(stride)
        base = nxt
    return list(reversed(new_shape)), list(reversed(new_strides))

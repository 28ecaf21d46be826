"""Upstream's packed conv2d and dense schedule templates (vta/top/vta_conv2d.py, vta_dense.py),
written against our tensor-expression API so an upstream knob set yields upstream's stream."""
from __future__ import annotations

import math

from .. import te, topi
from ._layers import CONV_LAYERS, Dense, Elementwise, conv_geometry


def _elementwise(shape, name, fn):
    """One accumulator stage ``fn(value)`` over the whole output shape."""
    return lambda src: te.compute(shape, lambda *i: fn(src(*i)), name=name, tag="elemwise")


def _epilogue(env, result, epilogue, shape, bias_index, bias_dtype="int32"):
    """Chain the epilogue stages in the accumulator; returns (stages, bias placeholder or None).
    An int8 bias is widened by the DMA itself (an ACC_8BIT load)."""
    stages, bias = [], None
    out = shape["out"]
    for step in epilogue:
        name, args = step[0], step[1:]
        if name == "bias":
            bias = te.placeholder(shape["bias"], name="bias",
                                  dtype=env.acc_dtype if bias_dtype == "int32" else env.inp_dtype)
            src = result
            result = te.compute(out, lambda *i: src(*i) + bias(*bias_index(i)), name="res_bias", tag="elemwise")
        elif name == "shr":
            result = _elementwise(out, "res_shr", lambda x, n=args[0]: x >> n)(result)
        elif name == "add":
            result = _elementwise(out, "res_round", lambda x, v=args[0]: x + v)(result)
        elif name in ("max", "relu"):
            value = 0 if name == "relu" else args[0]
            result = _elementwise(out, f"res_{name}", lambda x, v=value: te.max(x, v))(result)
        elif name == "min":
            result = _elementwise(out, "res_min", lambda x, v=args[0]: te.min(x, v))(result)
        elif name == "clip":   # Relay's clip reaches VTA as min(hi) then max(lo)
            stages.append(_elementwise(out, "clip_a", lambda x, v=args[1]: te.min(x, v))(result))
            result = _elementwise(out, "clip_b", lambda x, v=args[0]: te.max(x, v))(stages[-1])
        stages.append(result)
    return stages, bias


def _epilogue_on_alu(s, env, ewise, bias):
    """Epilogue stages in the accumulator under the ALU pragma; the bias (if any) cache-read
    into the accumulator. Returns the bias's cache stage."""
    cbias = None
    if bias is not None:
        bias_stage = next(t for t in ewise if t.name == "res_bias")
        cbias = s.cache_read(bias, env.acc_scope, [bias_stage])
    for stage in ewise:
        s[stage].set_scope(env.acc_scope)
        s[stage].pragma(s[stage].op.axis[0], env.alu)
    return cbias


def _compute_tile_at(s, env, output, store_pt, stages, cbias):
    """Compute the GEMM and its epilogue per output tile, loading the bias tile there too."""
    for stage in stages:
        s[stage].compute_at(s[output], store_pt)
    if cbias is not None:
        s[cbias].compute_at(s[output], store_pt)
        s[cbias].pragma(s[cbias].op.axis[0], env.dma_copy)


def _tile_reduction(s, env, gemm, k_o, knobs, operands, batch_axis):
    """Split the reduction by tile_ci, DMA the operand tiles at the knob's load level and
    tensorize the GEMM at its batch axis."""
    k_o, k_oi = s[gemm].split(k_o, factor=knobs["tile_ci"][1])
    load_pt = k_o if knobs["load_level"] == "ci_tile" else k_oi
    for operand in operands:
        s[operand].compute_at(s[gemm], load_pt)
    for operand in operands:
        s[operand].pragma(s[operand].op.axis[0], env.dma_copy)
    s[gemm].tensorize(batch_axis, env.gemm)


def transpose_split(tile: int, factor: int) -> int:
    """The factor by which upstream's transposed conv splits a tile axis (4 for rows, 2 for
    columns) as an exact split: the factor when it divides the tile; the whole tile when the tile
    is smaller (what TVM's guarded split iterates); else the largest common divisor."""
    if tile % factor == 0:
        return factor
    return tile if tile < factor else math.gcd(tile, factor)


def conv2d_packed(layer, env, knobs: dict):
    """(schedule, argument tensors) of upstream's conv2d_packed.vta template, and of its
    group_conv2d_packed.vta and conv2d_transpose_packed.vta variants: one template over the
    layer's ``conv_geometry``."""
    g = conv_geometry(layer)
    n, c = layer.batch // env.BATCH, layer.in_channels // env.BLOCK_IN
    o = layer.out_channels // env.BLOCK_OUT
    # A grouped conv declares its channel axes split as (group, block in group): the same memory
    # as the packed layout, and each output tile's input an affine region (``build`` relabels the
    # arguments with the packed shapes).
    lead = (g.groups,) if g.groups > 1 else ()
    c_g, o_g = c // g.groups, o // g.groups
    data = te.placeholder((n, *lead, c_g, g.in_height, g.in_width, env.BATCH, env.BLOCK_IN), name="data",
                          dtype=env.inp_dtype)
    kernel = te.placeholder((*lead, o_g, c_g, g.kernel, g.kernel, env.BLOCK_OUT, env.BLOCK_IN), name="kernel",
                            dtype=env.wgt_dtype)
    top, left, bottom, right = g.pads
    zeros = [0] * len(lead)
    pad_data = (topi.nn.pad(data, [0, *zeros, 0, top, left, 0, 0], [0, *zeros, 0, bottom, right, 0, 0],
                            name="pad_data") if g.padded else data)
    oshape = (n, *lead, o_g, g.out_height, g.out_width, env.BATCH, env.BLOCK_OUT)
    d_i = te.reduce_axis((0, g.kernel), name="d_i")
    d_j = te.reduce_axis((0, g.kernel), name="d_j")
    k_o = te.reduce_axis((0, c_g), name="k_o")
    k_i = te.reduce_axis((0, env.BLOCK_IN), name="k_i")
    hs = ws = g.stride

    def body(b_o, group, c_o, i, j, b_i, c_i):
        return te.sum(
            pad_data[(b_o, *group, k_o, i * hs + d_i, j * ws + d_j, b_i, k_i)].astype(env.acc_dtype)
            * kernel[(*group, c_o, k_o, d_i, d_j, c_i, k_i)].astype(env.acc_dtype),
            axis=[k_o, d_i, d_j, k_i])

    conv = te.compute(oshape, (lambda b_o, grp, c_o, i, j, b_i, c_i: body(b_o, (grp,), c_o, i, j, b_i, c_i)) if lead
                      else (lambda b_o, c_o, i, j, b_i, c_i: body(b_o, (), c_o, i, j, b_i, c_i)),
                      name="res_conv", tag="conv2d_dense")
    ewise, bias = _epilogue(env, conv, layer.epilogue,
                            {"out": oshape, "bias": (n, *lead, o_g, 1, 1, env.BATCH, env.BLOCK_OUT)},
                            lambda i: (*i[:-4], 0, 0, i[-2], i[-1]), knobs.get("bias_dtype", "int32"))
    last = ewise[-1] if ewise else conv
    output = te.compute(oshape, lambda *i: last(*i).astype(env.out_dtype), name="res", tag="elemwise")

    s = te.create_schedule(output.op)
    if g.padded:
        cdata = pad_data
        s[pad_data].set_scope(env.inp_scope)
    else:
        cdata = s.cache_read(data, env.inp_scope, [conv])
    ckernel = s.cache_read(kernel, env.wgt_scope, [conv])
    s[conv].set_scope(env.acc_scope)
    cbias = _epilogue_on_alu(s, env, ewise, bias)

    x_bo, *x_grp, x_co, x_i, x_j, x_bi, x_ci = s[output].op.axis
    x_co0, x_co1 = s[output].split(x_co, factor=knobs["tile_co"][1])
    x_i0, x_i1 = s[output].split(x_i, factor=knobs["tile_h"][1])
    x_j0, x_j1 = s[output].split(x_j, factor=knobs["tile_w"][1])
    outer = {"h": [x_i0], "c": x_grp + [x_co0], "w": [x_j0]}   # upstream's co tile loop: (group, co tile)
    s[output].reorder(x_bo, *(v for a in knobs["outer_order"] for v in outer[a]), x_co1, x_i1, x_j1, x_bi, x_ci)
    # Virtual threads split an outer tile loop and move the thread axis outermost. Upstream
    # splits after the compute_at below; splitting first is the same schedule, and stays legal
    # when the split loop is the attach point itself (a reordered outer_order). The co tile loop
    # of a grouped conv is (group, co tile in group): a thread is the co tile's parity, the
    # group's when a group holds one tile (check_knobs refuses an odd count of several).
    for knob, axis in (("oc_nthread", "c"), ("h_nthread", "h")):
        if knobs[knob] > 1:
            part = 0 if axis == "c" and x_grp and knobs["tile_co"][0] == g.groups else -1
            outer[axis][part], v_t = s[output].split(outer[axis][part], factor=knobs[knob])
            s[output].reorder(v_t, x_bo)
            s[output].bind(v_t, te.thread_axis("cthread"))
    store_pt = outer[knobs["outer_order"][-1]][-1]   # upstream: x_j0
    _compute_tile_at(s, env, output, store_pt, [conv] + ewise, cbias)

    x_bo, *x_grp, x_co, x_i, x_j, x_bi, x_ci = s[conv].op.axis
    k_o, d_i, d_j, k_i = s[conv].op.reduce_axis
    if g.order == "transpose":
        # upstream's conv2d_transpose order: rows split by 4 and columns by 2 inside the tile
        x_i, x_ii = s[conv].split(x_i, factor=transpose_split(knobs["tile_h"][1], 4))
        x_j, x_jj = s[conv].split(x_j, factor=transpose_split(knobs["tile_w"][1], 2))
        s[conv].reorder(x_bo, k_o, x_j, x_co, x_i, x_jj, d_j, d_i, x_ii, x_bi, x_ci, k_i)
    else:
        s[conv].reorder(x_bo, k_o, x_j, d_j, d_i, *x_grp, x_co, x_i, x_bi, x_ci, k_i)
    _tile_reduction(s, env, conv, k_o, knobs, (cdata, ckernel), x_bi)
    s[output].pragma({"co": x_co1, "h": x_i1, "w": x_j1}[knobs["store_axis"]], env.dma_copy)
    args = [data, kernel] + ([bias] if bias is not None else []) + [output]
    return s, args


def dense_packed(layer: Dense, env, knobs: dict):
    """(schedule, argument tensors) of upstream's dense_packed.vta template."""
    n, c = layer.batch // env.BATCH, layer.in_features // env.BLOCK_IN
    o = layer.out_features // env.BLOCK_OUT
    data = te.placeholder((n, c, env.BATCH, env.BLOCK_IN), name="data", dtype=env.inp_dtype)
    weight = te.placeholder((o, c, env.BLOCK_OUT, env.BLOCK_IN), name="weight", dtype=env.wgt_dtype)
    k_o = te.reduce_axis((0, c), name="k_o")
    k_i = te.reduce_axis((0, env.BLOCK_IN), name="k_i")
    oshape = (n, o, env.BATCH, env.BLOCK_OUT)
    dense = te.compute(
        oshape,
        lambda b_o, c_o, b_i, c_i: te.sum(
            data[b_o, k_o, b_i, k_i].astype(env.acc_dtype) * weight[c_o, k_o, c_i, k_i].astype(env.acc_dtype),
            axis=[k_o, k_i]),
        name="res_gemm", tag="dense_pack")
    ewise, bias = _epilogue(env, dense, layer.epilogue, {"out": oshape, "bias": (1, o, 1, env.BLOCK_OUT)},
                            lambda i: (0, i[1], 0, i[3]), knobs.get("bias_dtype", "int32"))
    last = ewise[-1] if ewise else dense
    output = te.compute(oshape, lambda *i: last(*i).astype(env.out_dtype), name="res", tag="elemwise")

    s = te.create_schedule(output.op)
    cdata = s.cache_read(data, env.inp_scope, [dense])
    cweight = s.cache_read(weight, env.wgt_scope, [dense])
    s[dense].set_scope(env.acc_scope)
    cbias = _epilogue_on_alu(s, env, ewise, bias)

    x_b, x_c, _, _ = s[output].op.axis
    x_bo, x_bi = s[output].split(x_b, factor=knobs["tile_b"][1])
    x_co, x_ci = s[output].split(x_c, factor=knobs["tile_co"][1])
    s[output].reorder(x_bo, x_co, x_bi, x_ci)
    store_pt = x_co
    if knobs["oc_nthread"] > 1:
        # Upstream splits x_co for the threads *after* attaching the GEMM to it, which TVM
        # rejects ("cannot find attach point"); split first and attach to the remaining loop.
        store_pt, v_t = s[output].split(x_co, factor=knobs["oc_nthread"])
        s[output].reorder(v_t, x_bo)
        s[output].bind(v_t, te.thread_axis("cthread"))
    _compute_tile_at(s, env, output, store_pt, [dense] + ewise, cbias)

    d_bo, d_co, d_bi, d_ci = s[dense].op.axis
    k_o, k_i = s[dense].op.reduce_axis
    if knobs["gemm_order"] == "upstream":
        s[dense].reorder(d_bo, k_o, d_co)
    else:
        s[dense].reorder(d_bo, k_o, d_co, d_bi, d_ci, k_i)
    _tile_reduction(s, env, dense, k_o, knobs, (cdata, cweight), d_bi)
    s[output].pragma(x_ci, env.dma_copy)
    args = [data, weight] + ([bias] if bias is not None else []) + [output]
    return s, args


def alu_packed(layer: Elementwise, env, knobs: dict):
    """(schedule, argument tensors) of upstream's ALU-only template (schedule_alu_packed)."""
    n, c = layer.batch // env.BATCH, layer.channels // env.BLOCK_OUT
    shape = (n, c, layer.height, layer.width, env.BATCH, env.BLOCK_OUT)
    lhs = te.placeholder(shape, name="lhs", dtype=env.acc_dtype)
    rhs = te.placeholder(shape, name="rhs", dtype=env.acc_dtype)
    combine = (lambda a, b: a + b) if layer.op == "add" else (lambda a, b: a * b)
    result = te.compute(shape, lambda *i: combine(lhs(*i), rhs(*i)), name=f"res_{layer.op}", tag="elemwise")
    ewise, _ = _epilogue(env, result, layer.epilogue, {"out": shape}, None)
    ewise = [result] + ewise
    output = te.compute(shape, lambda *i: ewise[-1](*i).astype(env.out_dtype), name="res", tag="elemwise")

    s = te.create_schedule(output.op)
    x_bo, x_co, x_i, x_j, x_bi, x_ci = s[output].op.axis
    x_co0, x_co1 = s[output].split(x_co, factor=knobs["tile_co"][1])
    x_i0, x_i1 = s[output].split(x_i, factor=knobs["tile_h"][1])
    x_j0, x_j1 = s[output].split(x_j, factor=knobs["tile_w"][1])
    s[output].reorder(x_bo, x_i0, x_co0, x_j0, x_co1, x_i1, x_j1, x_bi, x_ci)
    store_pt = x_j0
    for stage in ewise:
        s[stage].set_scope(env.acc_scope)
        s[stage].pragma(s[stage].op.axis[0], env.alu)
        s[stage].compute_at(s[output], store_pt)
    for tensor in (lhs, rhs):
        cached = s.cache_read(tensor, env.acc_scope, [result])
        s[cached].pragma(s[cached].op.axis[0], env.dma_copy)
        s[cached].compute_at(s[output], store_pt)
    s[output].pragma({"co": x_co1, "h": x_i1, "w": x_j1}[knobs["store_axis"]], env.dma_copy)
    return s, [lhs, rhs, output]


def template(layer):
    """The schedule template of a layer."""
    if isinstance(layer, CONV_LAYERS):
        return conv2d_packed
    return {Dense: dense_packed, Elementwise: alu_packed}[type(layer)]

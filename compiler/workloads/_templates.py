"""Upstream's packed conv2d and dense schedule templates (vta/top/vta_conv2d.py, vta_dense.py),
written against our tensor-expression API so an upstream knob set yields upstream's stream."""
from __future__ import annotations

from .. import te, topi
from ._layers import Conv2D, Dense, Elementwise


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


def conv2d_packed(layer: Conv2D, env, knobs: dict):
    """(schedule, argument tensors) of upstream's conv2d_packed.vta template."""
    n, c = layer.batch // env.BATCH, layer.in_channels // env.BLOCK_IN
    o = layer.out_channels // env.BLOCK_OUT
    data = te.placeholder((n, c, layer.height, layer.width, env.BATCH, env.BLOCK_IN), name="data", dtype=env.inp_dtype)
    kernel = te.placeholder((o, c, layer.kernel, layer.kernel, env.BLOCK_OUT, env.BLOCK_IN), name="kernel",
                            dtype=env.wgt_dtype)
    pad_data = (topi.nn.pad(data, [0, 0, layer.pad, layer.pad, 0, 0], name="pad_data") if layer.pad else data)
    oshape = (n, o, layer.out_height, layer.out_width, env.BATCH, env.BLOCK_OUT)
    d_i = te.reduce_axis((0, layer.kernel), name="d_i")
    d_j = te.reduce_axis((0, layer.kernel), name="d_j")
    k_o = te.reduce_axis((0, c), name="k_o")
    k_i = te.reduce_axis((0, env.BLOCK_IN), name="k_i")
    hs = ws = layer.stride
    conv = te.compute(
        oshape,
        lambda b_o, c_o, i, j, b_i, c_i: te.sum(
            pad_data[b_o, k_o, i * hs + d_i, j * ws + d_j, b_i, k_i].astype(env.acc_dtype)
            * kernel[c_o, k_o, d_i, d_j, c_i, k_i].astype(env.acc_dtype),
            axis=[k_o, d_i, d_j, k_i]),
        name="res_conv", tag="conv2d_dense")
    ewise, bias = _epilogue(env, conv, layer.epilogue,
                            {"out": oshape, "bias": (n, o, 1, 1, env.BATCH, env.BLOCK_OUT)},
                            lambda i: (i[0], i[1], 0, 0, i[4], i[5]), knobs.get("bias_dtype", "int32"))
    last = ewise[-1] if ewise else conv
    output = te.compute(oshape, lambda *i: last(*i).astype(env.out_dtype), name="res", tag="elemwise")

    s = te.create_schedule(output.op)
    if layer.pad:
        cdata = pad_data
        s[pad_data].set_scope(env.inp_scope)
    else:
        cdata = s.cache_read(data, env.inp_scope, [conv])
    ckernel = s.cache_read(kernel, env.wgt_scope, [conv])
    s[conv].set_scope(env.acc_scope)
    cbias = _epilogue_on_alu(s, env, ewise, bias)

    x_bo, x_co, x_i, x_j, x_bi, x_ci = s[output].op.axis
    x_co0, x_co1 = s[output].split(x_co, factor=knobs["tile_co"][1])
    x_i0, x_i1 = s[output].split(x_i, factor=knobs["tile_h"][1])
    x_j0, x_j1 = s[output].split(x_j, factor=knobs["tile_w"][1])
    outer = {"h": x_i0, "c": x_co0, "w": x_j0}
    s[output].reorder(x_bo, *(outer[a] for a in knobs["outer_order"]), x_co1, x_i1, x_j1, x_bi, x_ci)
    # Virtual threads split an outer tile loop and move the thread axis outermost. Upstream
    # splits after the compute_at below; splitting first is the same schedule, and stays legal
    # when the split loop is the attach point itself (a reordered outer_order).
    for knob, axis in (("oc_nthread", "c"), ("h_nthread", "h")):
        if knobs[knob] > 1:
            outer[axis], v_t = s[output].split(outer[axis], factor=knobs[knob])
            s[output].reorder(v_t, x_bo)
            s[output].bind(v_t, te.thread_axis("cthread"))
    store_pt = outer[knobs["outer_order"][-1]]   # upstream: x_j0
    _compute_tile_at(s, env, output, store_pt, [conv] + ewise, cbias)

    x_bo, x_co, x_i, x_j, x_bi, x_ci = s[conv].op.axis
    k_o, d_i, d_j, k_i = s[conv].op.reduce_axis
    s[conv].reorder(x_bo, k_o, x_j, d_j, d_i, x_co, x_i, x_bi, x_ci, k_i)
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

"""Matrix Multiply Blocking — upstream's ``vta/tutorials/optimize/matrix_multiply_opt.py``
ported to vta-dse.

A 1x1024 by 1024x1024 fully-connected layer, blocked so each tile fits VTA's SRAM buffers:
256 output channels per block, reduction split into 256-wide steps, the int32 result shifted
right by 8 and clipped to [0, 127] on the ALU before the int8 store.
"""
from __future__ import annotations

import numpy as np

import compiler
import hwconfigs
import simulator
from compiler import te


def declare(env, batch_size=1, in_channels=1024, out_channels=1024):
    assert batch_size % env.BATCH == 0
    assert in_channels % env.BLOCK_IN == 0
    assert out_channels % env.BLOCK_OUT == 0
    data_shape = (batch_size // env.BATCH, in_channels // env.BLOCK_IN, env.BATCH, env.BLOCK_IN)
    weight_shape = (out_channels // env.BLOCK_OUT, in_channels // env.BLOCK_IN, env.BLOCK_OUT, env.BLOCK_IN)
    output_shape = (batch_size // env.BATCH, out_channels // env.BLOCK_OUT, env.BATCH, env.BLOCK_OUT)
    num_ops = in_channels * out_channels * batch_size * 2
    ic = te.reduce_axis((0, in_channels // env.BLOCK_IN), name="ic")
    ic_tns = te.reduce_axis((0, env.BLOCK_IN), name="ic_tns")
    data = te.placeholder(data_shape, name="data", dtype=env.inp_dtype)
    weight = te.placeholder(weight_shape, name="weight", dtype=env.wgt_dtype)
    res_gemm = te.compute(
        output_shape,
        lambda bo, co, bi, ci: te.sum(
            data[bo, ic, bi, ic_tns].astype(env.acc_dtype) * weight[co, ic, ci, ic_tns].astype(env.acc_dtype),
            axis=[ic, ic_tns],
        ),
        name="res_gem",
    )
    res_shr = te.compute(output_shape, lambda *i: res_gemm(*i) >> env.INP_WIDTH, name="res_shr")
    res_max = te.compute(output_shape, lambda *i: te.max(res_shr(*i), 0), "res_max")
    res_min = te.compute(output_shape, lambda *i: te.min(res_max(*i), (1 << (env.INP_WIDTH - 1)) - 1), "res_min")
    res = te.compute(output_shape, lambda *i: res_min(*i).astype(env.inp_dtype), name="res")
    return dict(data=data, weight=weight, res_gemm=res_gemm, res_shr=res_shr, res_max=res_max,
                res_min=res_min, res=res, ic=ic, ic_tns=ic_tns, num_ops=num_ops,
                shapes=(data_shape, weight_shape, output_shape))


def schedule(env, t, b_block=1, i_block=256, o_block=256, verbose=False):
    data, weight, res_gemm, res_shr, res_max, res_min, res = (
        t["data"], t["weight"], t["res_gemm"], t["res_shr"], t["res_max"], t["res_min"], t["res"])
    s = te.create_schedule(res.op)
    b_block = b_block // env.BATCH
    i_block = i_block // env.BLOCK_IN
    o_block = o_block // env.BLOCK_OUT
    # Tile the output tensor along the batch and output channel dimensions
    b, oc, b_tns, oc_tns = s[res].op.axis
    b_out, b_inn = s[res].split(b, b_block)
    oc_out, oc_inn = s[res].split(oc, o_block)
    s[res].reorder(b_out, oc_out, b_inn, oc_inn)
    # Move intermediate computation into each output compute tile
    s[res_gemm].compute_at(s[res], oc_out)
    s[res_shr].compute_at(s[res], oc_out)
    s[res_max].compute_at(s[res], oc_out)
    s[res_min].compute_at(s[res], oc_out)
    # Apply additional loop split along reduction axis (input channel)
    b_inn, oc_inn, b_tns, oc_tns = s[res_gemm].op.axis
    ic_out, ic_inn = s[res_gemm].split(t["ic"], i_block)
    # Reorder axes. We move the ic_out axis all the way out of the GEMM loop to block along the
    # reduction axis
    s[res_gemm].reorder(ic_out, b_inn, oc_inn, ic_inn, b_tns, oc_tns, t["ic_tns"])
    if verbose:
        print(compiler.lower(s, [data, weight, res], simple_mode=True, passes=[]))
    # Set scope of SRAM buffers
    s[res_gemm].set_scope(env.acc_scope)
    s[res_shr].set_scope(env.acc_scope)
    s[res_min].set_scope(env.acc_scope)
    s[res_max].set_scope(env.acc_scope)
    # Block data and weight cache reads
    data_buf = s.cache_read(data, env.inp_scope, [res_gemm])
    weight_buf = s.cache_read(weight, env.wgt_scope, [res_gemm])
    s[data_buf].compute_at(s[res_gemm], ic_out)
    s[weight_buf].compute_at(s[res_gemm], ic_out)
    # Use DMA copy pragma on DRAM->SRAM operations
    s[data_buf].pragma(s[data_buf].op.axis[0], env.dma_copy)
    s[weight_buf].pragma(s[weight_buf].op.axis[0], env.dma_copy)
    # Use DMA copy pragma on SRAM->DRAM operation (this implies that these copies should be
    # performed along b_inn, or result axis 2)
    s[res].pragma(s[res].op.axis[2], env.dma_copy)
    # Apply tensorization over the batch tensor tile axis
    s[res_gemm].tensorize(b_tns, env.gemm)
    # Add an ALU pragma over the shift and clipping operations
    s[res_shr].pragma(s[res_shr].op.axis[0], env.alu)
    s[res_min].pragma(s[res_min].op.axis[0], env.alu)
    s[res_max].pragma(s[res_max].op.axis[0], env.alu)
    if verbose:
        print(compiler.lower(s, [data, weight, res], simple_mode=True))
    return s


def main(verbose: bool = True):
    env = hwconfigs.get_env()
    t = declare(env)
    data, weight, res = t["data"], t["weight"], t["res"]
    s = schedule(env, t, verbose=verbose)
    my_gemm = compiler.build(s, [data, weight, res], "ext_dev", env=env, name="my_gemm")

    batch_size, in_channels, out_channels = 1, 1024, 1024
    data_np = np.random.randint(-128, 128, size=(batch_size, in_channels)).astype(data.dtype)
    weight_np = np.random.randint(-128, 128, size=(out_channels, in_channels)).astype(weight.dtype)
    data_packed = data_np.reshape(batch_size // env.BATCH, env.BATCH, in_channels // env.BLOCK_IN,
                                  env.BLOCK_IN).transpose((0, 2, 1, 3))
    weight_packed = weight_np.reshape(out_channels // env.BLOCK_OUT, env.BLOCK_OUT, in_channels // env.BLOCK_IN,
                                      env.BLOCK_IN).transpose((0, 2, 1, 3))
    output_shape = t["shapes"][2]
    res_nd = np.zeros(output_shape).astype(res.dtype)
    result = simulator.run(my_gemm, data_packed, weight_packed, res_nd)

    res_ref = np.dot(data_np.astype(env.acc_dtype), weight_np.T.astype(env.acc_dtype))
    res_ref = res_ref >> env.INP_WIDTH
    res_ref = np.clip(res_ref, 0, (1 << env.INP_WIDTH - 1) - 1).astype(res.dtype)
    res_ref = res_ref.reshape(batch_size // env.BATCH, env.BATCH, out_channels // env.BLOCK_OUT,
                              env.BLOCK_OUT).transpose((0, 2, 1, 3))
    np.testing.assert_equal(res_ref, res_nd)
    if verbose:
        print("Execution statistics:", result.stats)
        print("Successful blocked matrix multiply test!")
    return my_gemm, result


if __name__ == "__main__":
    main()

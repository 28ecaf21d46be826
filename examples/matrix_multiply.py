"""Simple Matrix Multiply — upstream's ``vta/tutorials/matrix_multiply.py`` ported to vta-dse.

C (1 x 256) = A (1 x 256) · Bᵀ (256 x 256) in VTA's tiled layouts: A and B tiles are loaded into
the input and weight buffers at every step of the outer reduction loop, the GEMM core
accumulates into the accumulator buffer, and the int8 result is stored back to DRAM.
"""
from __future__ import annotations

import numpy as np

import compiler
import hwconfigs
import simulator
from compiler import te


def declare(env):
    # Output channel factor m - total 16x16=256 output channels
    m = 16
    # Input channel factor n - total 16x16=256 input channels
    n = 16
    # Batch factor o (we use single batch inference)
    o = 1
    A = te.placeholder((o, n, env.BATCH, env.BLOCK_IN), name="A", dtype=env.inp_dtype)
    B = te.placeholder((m, n, env.BLOCK_OUT, env.BLOCK_IN), name="B", dtype=env.wgt_dtype)
    A_buf = te.compute((o, n, env.BATCH, env.BLOCK_IN), lambda *i: A(*i), "A_buf")
    B_buf = te.compute((m, n, env.BLOCK_OUT, env.BLOCK_IN), lambda *i: B(*i), "B_buf")
    # Outer and inner input feature reduction axes
    ko = te.reduce_axis((0, n), name="ko")
    ki = te.reduce_axis((0, env.BLOCK_IN), name="ki")
    C_buf = te.compute(
        (o, m, env.BATCH, env.BLOCK_OUT),
        lambda bo, co, bi, ci: te.sum(
            A_buf[bo, ko, bi, ki].astype(env.acc_dtype) * B_buf[co, ko, ci, ki].astype(env.acc_dtype),
            axis=[ko, ki],
        ),
        name="C_buf",
    )
    C = te.compute((o, m, env.BATCH, env.BLOCK_OUT), lambda *i: C_buf(*i).astype(env.inp_dtype), name="C")
    return (o, n, m), (A, B, A_buf, B_buf, C_buf, C, ko, ki)


def schedule(env, tensors, verbose=False):
    A, B, A_buf, B_buf, C_buf, C, ko, ki = tensors
    s = te.create_schedule(C.op)
    # upstream prints tvm.lower here (no VTA passes): passes=[] is that
    if verbose:
        print(compiler.lower(s, [A, B, C], simple_mode=True, passes=[]))
    s[A_buf].set_scope(env.inp_scope)
    s[B_buf].set_scope(env.wgt_scope)
    s[C_buf].set_scope(env.acc_scope)
    # Move buffer copy into matrix multiply loop
    s[A_buf].compute_at(s[C_buf], ko)
    s[B_buf].compute_at(s[C_buf], ko)
    # Tag the buffer copies with the DMA pragma to insert a DMA transfer
    s[A_buf].pragma(s[A_buf].op.axis[0], env.dma_copy)
    s[B_buf].pragma(s[B_buf].op.axis[0], env.dma_copy)
    s[C].pragma(s[C].op.axis[0], env.dma_copy)
    if verbose:
        print(compiler.lower(s, [A, B, C], simple_mode=True, passes=[]))
    s[C_buf].reorder(ko, s[C_buf].op.axis[0], s[C_buf].op.axis[1], s[C_buf].op.axis[2], s[C_buf].op.axis[3], ki)
    s[C_buf].tensorize(s[C_buf].op.axis[2], env.gemm)
    if verbose:
        print(compiler.lower(s, [A, B, C], simple_mode=True))
    return s


def main(verbose: bool = True):
    env = hwconfigs.get_env()
    (o, n, m), tensors = declare(env)
    A, B, C = tensors[0], tensors[1], tensors[5]
    s = schedule(env, tensors, verbose)
    my_gemm = compiler.build(s, [A, B, C], "ext_dev", env=env, name="my_gemm")

    A_orig = np.random.randint(-128, 128, size=(o * env.BATCH, n * env.BLOCK_IN)).astype(A.dtype)
    B_orig = np.random.randint(-128, 128, size=(m * env.BLOCK_OUT, n * env.BLOCK_IN)).astype(B.dtype)
    A_packed = A_orig.reshape(o, env.BATCH, n, env.BLOCK_IN).transpose((0, 2, 1, 3))
    B_packed = B_orig.reshape(m, env.BLOCK_OUT, n, env.BLOCK_IN).transpose((0, 2, 1, 3))
    C_nd = np.zeros((o, m, env.BATCH, env.BLOCK_OUT)).astype(C.dtype)
    res = simulator.run(my_gemm, A_packed, B_packed, C_nd)

    C_ref = np.dot(A_orig.astype(env.acc_dtype), B_orig.T.astype(env.acc_dtype)).astype(C.dtype)
    C_ref = C_ref.reshape(o, env.BATCH, m, env.BLOCK_OUT).transpose((0, 2, 1, 3))
    np.testing.assert_equal(C_ref, C_nd)
    if verbose:
        print("Execution statistics:", res.stats)
        print("Successful matrix multiply test!")
    return my_gemm, res


if __name__ == "__main__":
    main()

"""Get Started with VTA — upstream's ``vta/tutorials/vta_get_started.py`` ported to vta-dse.

Vector addition on VTA's vector ALU: A and B are loaded into the accumulator buffer by DMA,
added by one ALU instruction, cast to int8 and stored back to DRAM. Only the imports and the
RPC/device plumbing changed: ``compiler.build`` returns a module that ``simulator.run`` calls.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

import compiler
import hwconfigs
import simulator
from compiler import te


def main(verbose: bool = True):
    # Loading in VTA parameters (the default config, "sim" target).
    env = hwconfigs.get_env()

    # Computation declaration: the seed's shapes, 16 x 1024 int32 vectors in the tiled layout.
    m = 64   # output channel factor: 64 x 16 = 1024 channels
    o = 16   # batch factor
    A = te.placeholder((o, m, env.BATCH, env.BLOCK_OUT), name="A", dtype=env.acc_dtype)
    B = te.placeholder((o, m, env.BATCH, env.BLOCK_OUT), name="B", dtype=env.acc_dtype)

    # Copy buffers (cached reads into VTA's on-chip SRAM).
    A_buf = te.compute((o, m, env.BATCH, env.BLOCK_OUT), lambda *i: A(*i), "A_buf")
    B_buf = te.compute((o, m, env.BATCH, env.BLOCK_OUT), lambda *i: B(*i), "B_buf")

    # Vector addition.
    C_buf = te.compute(
        (o, m, env.BATCH, env.BLOCK_OUT),
        lambda *i: A_buf(*i).astype(env.acc_dtype) + B_buf(*i).astype(env.acc_dtype),
        name="C_buf",
    )

    # Cast to the narrow output type and send to main memory.
    C = te.compute((o, m, env.BATCH, env.BLOCK_OUT), lambda *i: C_buf(*i).astype(env.inp_dtype), name="C")

    # Default schedule.
    s = te.create_schedule(C.op)
    # upstream prints tvm.lower here (no VTA passes): passes=[] is that
    if verbose:
        print(compiler.lower(s, [A, B, C], simple_mode=True, passes=[]))

    # Buffer scopes: all three intermediates live in the accumulator buffer.
    s[A_buf].set_scope(env.acc_scope)
    s[B_buf].set_scope(env.acc_scope)
    s[C_buf].set_scope(env.acc_scope)

    # DMA transfers.
    s[A_buf].pragma(s[A_buf].op.axis[0], env.dma_copy)
    s[B_buf].pragma(s[B_buf].op.axis[0], env.dma_copy)
    s[C].pragma(s[C].op.axis[0], env.dma_copy)

    # ALU operations.
    s[C_buf].pragma(C_buf.op.axis[0], env.alu)
    if verbose:
        print(compiler.lower(s, [A, B, C], simple_mode=True))

    # Compilation.
    my_vadd = compiler.build(s, [A, B, C], "ext_dev", env=env, name="my_vadd")

    # Saving and loading the module.
    with tempfile.TemporaryDirectory() as temp:
        path = os.path.join(temp, "vadd.npz")
        my_vadd.save(path)
        f = compiler.load(path)

    # Running the function.
    A_orig = np.random.randint(-128, 128, size=(o * env.BATCH, m * env.BLOCK_OUT)).astype(A.dtype)
    B_orig = np.random.randint(-128, 128, size=(o * env.BATCH, m * env.BLOCK_OUT)).astype(B.dtype)
    A_packed = A_orig.reshape(o, env.BATCH, m, env.BLOCK_OUT).transpose((0, 2, 1, 3))
    B_packed = B_orig.reshape(o, env.BATCH, m, env.BLOCK_OUT).transpose((0, 2, 1, 3))
    C_nd = np.zeros((o, m, env.BATCH, env.BLOCK_OUT)).astype(C.dtype)
    res = simulator.run(f, A_packed, B_packed, C_nd)

    # Verifying correctness.
    C_ref = (A_orig.astype(env.acc_dtype) + B_orig.astype(env.acc_dtype)).astype(C.dtype)
    C_ref = C_ref.reshape(o, env.BATCH, m, env.BLOCK_OUT).transpose((0, 2, 1, 3))
    np.testing.assert_equal(C_ref, C_nd)
    if verbose:
        print("Execution statistics:", res.stats)
        print("Successful vector add test!")
    return my_vadd, res


if __name__ == "__main__":
    main()

"""Speed of the functional simulator on a conv-sized program, full and count-only.

The program is ResNet-18's 56x56x64 -> 64, 3x3, pad 1 layer, assembled by hand with
``compiler.isa`` in the shape of upstream's conv tutorial (vta-spec Appendix A.3): per row tile,
a reset GEMM, then per input-channel block a padded input load, a weight load and one GEMM whose
uops enumerate (dy, dx, column) with loops over (output block, row); then shift/clip ALU ops and
one store per (output block, row). Tokens serialize the modules (correct, not overlapped).
Also times the conv stream of the reference corpus when it is available.

    python benchmarks/simulator_speed.py
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

import hwconfigs
from compiler import isa
from compiler.isa import AluInsn, FinishInsn, GemmInsn, MemInsn, Program, Uop
from simulator import Simulator, reference_path

H = W = 56
IC_BLOCKS = OC_BLOCKS = 4
TILE_H = 4
DATA, KERNEL, RES, UOPS = 0x1000, 0x40000, 0x80000, 0xC0000


def _module(insn) -> int:
    if isinstance(insn, MemInsn):
        if insn.opcode == isa.STORE:
            return 2
        return 0 if insn.memory_type in (isa.MEM_INP, isa.MEM_WGT) else 1
    return 1


def _serialize(insns):
    """Token flags on every module change (load<->store via a compute NOP), then FINISH."""
    out = []

    def link(prev, nxt):
        if _module(prev) < _module(nxt):
            prev.push_next, nxt.pop_prev = 1, 1
        else:
            prev.push_prev, nxt.pop_next = 1, 1

    for insn in insns + [MemInsn(memory_type=isa.MEM_UOP)]:
        insn = dataclasses.replace(insn)
        if out and _module(out[-1]) != _module(insn):
            if {_module(out[-1]), _module(insn)} == {0, 2}:
                nop = MemInsn(memory_type=isa.MEM_UOP)
                link(out[-1], nop)
                out.append(nop)
            link(out[-1], insn)
        out.append(insn)
    return out + [FinishInsn()]


def conv_program(env) -> Program:
    uops: list[Uop] = []
    insns = []

    def kernel(ops, sram):
        off = len(uops)
        uops.extend(ops)
        insns.append(MemInsn(memory_type=isa.MEM_UOP, sram_base=sram, dram_base=UOPS // 4 + off,
                             y_size=1, x_size=len(ops), x_stride=len(ops)))
        return sram, sram + len(ops)

    acc_rows = OC_BLOCKS * TILE_H * W            # acc tile: [oc][row][col]
    in_w = W + 2                                 # input tile rows carry the two pad columns
    for h0 in range(0, H, TILE_H):
        bgn, end = kernel([Uop(0, 0, 0)], 0)
        insns.append(GemmInsn(reset_reg=1, uop_bgn=bgn, uop_end=end, iter_out=acc_rows, dst_factor_out=1))
        top = 1 if h0 == 0 else 0
        bot = 1 if h0 + TILE_H == H else 0
        rows = TILE_H + 2 - top - bot
        g = None
        for ic in range(IC_BLOCKS):
            insns.append(MemInsn(memory_type=isa.MEM_INP, sram_base=0,
                                 dram_base=DATA // env.INP_ELEM_BYTES + ic * H * W + (h0 - 1 + top) * W,
                                 y_size=rows, x_size=W, x_stride=W, y_pad_0=top, y_pad_1=bot,
                                 x_pad_0=1, x_pad_1=1))
            # weights [oc][ic][dy][dx]: this ic's 9 taps of every oc block, 4 rows of 9
            insns.append(MemInsn(memory_type=isa.MEM_WGT, sram_base=0,
                                 dram_base=KERNEL // env.WGT_ELEM_BYTES + ic * 9,
                                 y_size=OC_BLOCKS, x_size=9, x_stride=IC_BLOCKS * 9))
            if g is None:
                g = kernel([Uop(j, dy * in_w + j + dx, dy * 3 + dx)
                            for dy in range(3) for dx in range(3) for j in range(W)], 1)
            insns.append(GemmInsn(uop_bgn=g[0], uop_end=g[1], iter_out=OC_BLOCKS, dst_factor_out=TILE_H * W,
                                  wgt_factor_out=9, iter_in=TILE_H, dst_factor_in=W, src_factor_in=in_w))
        a = kernel([Uop(0, 0, 0)], g[1])
        for op, imm in ((isa.ALU_SHR, 8), (isa.ALU_MAX, 0), (isa.ALU_MIN, 127)):
            insns.append(AluInsn(uop_bgn=a[0], uop_end=a[1], iter_in=acc_rows, dst_factor_in=1,
                                 src_factor_in=1, alu_opcode=op, use_imm=1, imm=imm))
        for oc in range(OC_BLOCKS):
            insns.append(MemInsn(opcode=isa.STORE, memory_type=isa.MEM_OUT, sram_base=oc * TILE_H * W,
                                 dram_base=RES // env.OUT_ELEM_BYTES + oc * H * W + h0 * W,
                                 y_size=1, x_size=TILE_H * W, x_stride=TILE_H * W))
    return Program(env, _serialize(insns), isa.encode_uops(uops, env), UOPS)


def _time(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _report(label, seconds, stats, n_insns, env):
    macs = stats["gemm_counter"] * env.BATCH * env.BLOCK_IN * env.BLOCK_OUT
    print(f"  {label:<11} {seconds * 1e3:8.1f} ms   {stats['gemm_counter'] / seconds / 1e6:8.2f} M uop-iter/s   "
          f"{macs / seconds / 1e9:7.2f} GMAC/s   {n_insns / seconds / 1e3:8.1f} k insn/s")


def main() -> None:
    env = hwconfigs.get_env()
    program = conv_program(env)
    raw = program.to_bytes()
    rng = np.random.default_rng(0)
    sim = Simulator(env, dram_size=1 << 20)
    sim.dram[DATA:DATA + IC_BLOCKS * H * W * 16] = rng.integers(0, 256, IC_BLOCKS * H * W * 16, dtype=np.uint8)
    n_wgt = OC_BLOCKS * IC_BLOCKS * 9 * 256
    sim.dram[KERNEL:KERNEL + n_wgt] = rng.integers(0, 256, n_wgt, dtype=np.uint8)
    sim.dram[UOPS:UOPS + 4 * len(program.uops)] = program.uops.astype("<u4").view(np.uint8)

    print(f"ResNet-18 56x56x64->64 3x3 conv, {len(program)} instructions, {len(program.uops)} uops ({env!r})")
    t_full, stats = _time(lambda: sim.execute(raw))
    t_count, stats_c = _time(lambda: sim.execute(raw, count_only=True))
    assert stats == stats_c
    print(f"  counters: {stats}")
    _report("full", t_full, stats, len(program), env)
    _report("count-only", t_count, stats, len(program), env)
    t_prog, _ = _time(lambda: sim.execute(program))
    print(f"  execute(Program) (read from the instruction objects): {t_prog * 1e3:.1f} ms")

    corpus = reference_path("fsim_raw_corpus_dev.jsonl")
    if corpus.is_file():
        case = next((c for c in map(json.loads, corpus.read_text().splitlines()) if c["name"].startswith("conv_default")),
                    None)
        if case:
            env = hwconfigs.get_env(**case["config"])
            sim = Simulator(env, dram_size=2 << 20)
            for addr, data in case["dram_before"]:
                b = bytes.fromhex(data)
                sim.dram[addr:addr + len(b)] = memoryview(b)
            raw = bytes.fromhex(case["insns_hex"])
            n = len(raw) // 16
            print(f"corpus {case['name']}: {n} instructions (tiled 3x3 conv, 2 virtual threads)")
            t_full, stats = _time(lambda: sim.execute(raw))
            t_count, _ = _time(lambda: sim.execute(raw, count_only=True))
            _report("full", t_full, stats, n, env)
            _report("count-only", t_count, stats, n, env)


if __name__ == "__main__":
    main()
    # Every ResNet-18 layer and the whole network: build, full and count-only times.
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import resnet18_speed

    print()
    resnet18_speed.main([])

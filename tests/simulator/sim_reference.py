"""A deliberately slow reference interpreter, written straight from the spec pseudo-code
(vta-spec §3.3-3.6, §4): per-element Python loops, program order, Python ints.

It ignores tokens, so it is only a reference for serialized (race-free, in-order) programs.
"""
from __future__ import annotations

from compiler import isa


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


class Reference:
    def __init__(self, env, dram: bytearray):
        self.env, self.dram = env, dram
        e = env
        self.uop = [(0, 0, 0)] * e.UOP_DEPTH
        self.inp = [[0] * (e.BATCH * e.BLOCK_IN) for _ in range(e.INP_DEPTH)]
        self.wgt = [[0] * (e.BLOCK_OUT * e.BLOCK_IN) for _ in range(e.WGT_DEPTH)]
        self.acc = [[0] * (e.BATCH * e.BLOCK_OUT) for _ in range(e.ACC_DEPTH)]
        self.stats = dict.fromkeys(("inp_load_nbytes", "wgt_load_nbytes", "acc_load_nbytes",
                                    "uop_load_nbytes", "out_store_nbytes", "gemm_counter",
                                    "alu_counter"), 0)

    def _read(self, addr: int, nbytes: int, width: int) -> list[int]:
        step = width // 8
        return [_signed(int.from_bytes(self.dram[addr + i:addr + i + step], "little"), width)
                for i in range(0, nbytes, step)]

    def run(self, program) -> dict:
        for insn in program.instructions:
            if isinstance(insn, isa.FinishInsn):
                break
            if isinstance(insn, isa.MemInsn):
                (self.load if insn.opcode == isa.LOAD else self.store)(insn)
            elif isinstance(insn, isa.GemmInsn):
                self.gemm(insn)
            else:
                self.alu(insn)
        return self.stats

    def load(self, op) -> None:
        e = self.env
        if op.x_size == 0:
            return
        t = op.memory_type
        table = {isa.MEM_INP: (self.inp, e.INP_ELEM_BYTES, e.INP_WIDTH, "inp_load_nbytes"),
                 isa.MEM_WGT: (self.wgt, e.WGT_ELEM_BYTES, e.WGT_WIDTH, "wgt_load_nbytes"),
                 isa.MEM_ACC: (self.acc, e.ACC_ELEM_BYTES, e.ACC_WIDTH, "acc_load_nbytes"),
                 isa.MEM_ACC_8BIT: (self.acc, e.ACC_ELEM_BYTES // 4, 8, "acc_load_nbytes"),
                 isa.MEM_UOP: (self.uop, 4, 32, "uop_load_nbytes")}
        sram, elem, width, counter = table[t]
        self.stats[counter] += op.x_size * op.y_size * (e.ACC_ELEM_BYTES if t == isa.MEM_ACC_8BIT else elem)
        lanes = elem * 8 // width
        zero = (0, 0, 0) if t == isa.MEM_UOP else [0] * lanes
        xtotal = op.x_pad_0 + op.x_size + op.x_pad_1
        row = op.sram_base
        for _ in range(xtotal * op.y_pad_0):
            sram[row] = list(zero) if t != isa.MEM_UOP else zero
            row += 1
        for y in range(op.y_size):
            for _ in range(op.x_pad_0):
                sram[row] = list(zero) if t != isa.MEM_UOP else zero
                row += 1
            for x in range(op.x_size):
                addr = (op.dram_base + y * op.x_stride + x) * elem
                if t == isa.MEM_UOP:
                    word = int.from_bytes(self.dram[addr:addr + 4], "little")
                    sram[row] = tuple((word >> lsb) & ((1 << w) - 1) for _, lsb, w in self.env.isa.uop.fields)
                else:
                    sram[row] = self._read(addr, elem, width)
                row += 1
            for _ in range(op.x_pad_1):
                sram[row] = list(zero) if t != isa.MEM_UOP else zero
                row += 1
        for _ in range(xtotal * op.y_pad_1):
            sram[row] = list(zero) if t != isa.MEM_UOP else zero
            row += 1

    def store(self, op) -> None:
        e = self.env
        if op.x_size == 0:
            return
        self.stats["out_store_nbytes"] += op.x_size * op.y_size * e.BATCH * e.BLOCK_OUT * e.OUT_WIDTH // 8
        step = e.OUT_WIDTH // 8
        for y in range(op.y_size):
            for x in range(op.x_size):
                src = self.acc[op.sram_base + y * op.x_size + x]
                base = (op.dram_base + y * op.x_stride + x) * e.OUT_ELEM_BYTES
                for lane, v in enumerate(src):
                    a = base + lane * step
                    self.dram[a:a + step] = (v & ((1 << e.OUT_WIDTH) - 1)).to_bytes(step, "little")

    def gemm(self, op) -> None:
        e = self.env
        if not op.reset_reg:
            self.stats["gemm_counter"] += op.iter_out * op.iter_in * (op.uop_end - op.uop_bgn)
        for y in range(op.iter_out):
            for x in range(op.iter_in):
                for u in range(op.uop_bgn, op.uop_end):
                    d, s, w = self.uop[u]
                    a = d + y * op.dst_factor_out + x * op.dst_factor_in
                    i = s + y * op.src_factor_out + x * op.src_factor_in
                    k_ = w + y * op.wgt_factor_out + x * op.wgt_factor_in
                    if op.reset_reg:
                        self.acc[a] = [0] * (e.BATCH * e.BLOCK_OUT)
                        continue
                    for b in range(e.BATCH):
                        for o in range(e.BLOCK_OUT):
                            acc = self.acc[a][b * e.BLOCK_OUT + o]
                            for k in range(e.BLOCK_IN):
                                acc += self.inp[i][b * e.BLOCK_IN + k] * self.wgt[k_][o * e.BLOCK_IN + k]
                            self.acc[a][b * e.BLOCK_OUT + o] = _signed(acc, e.ACC_WIDTH)

    def alu(self, op) -> None:
        e = self.env
        self.stats["alu_counter"] += op.iter_out * op.iter_in * (op.uop_end - op.uop_bgn)
        for y in range(op.iter_out):
            for x in range(op.iter_in):
                for u in range(op.uop_bgn, op.uop_end):
                    d0, s0, _ = self.uop[u]
                    d = d0 + y * op.dst_factor_out + x * op.dst_factor_in
                    s = s0 + y * op.src_factor_out + x * op.src_factor_in
                    for lane in range(e.BATCH * e.BLOCK_OUT):
                        a = self.acc[d][lane]
                        b = op.imm if op.use_imm else self.acc[s][lane]
                        self.acc[d][lane] = _signed(_alu(op.alu_opcode, a, b), 32) if e.ACC_WIDTH == 32 \
                            else _signed(_signed(_alu(op.alu_opcode, a, b), 32), e.ACC_WIDTH)


def _alu(opcode: int, a: int, b: int) -> int:
    if opcode == isa.ALU_MIN:
        return min(a, b)
    if opcode == isa.ALU_MAX:
        return max(a, b)
    if opcode == isa.ALU_ADD:
        return a + b
    if opcode == isa.ALU_SHR:  # counts masked to 5 bits, as x86 does for the upstream C shifts
        return a >> (b & 31) if b >= 0 else a << ((-b) & 31)
    if opcode == isa.ALU_MUL:
        return a * b
    raise ValueError(opcode)

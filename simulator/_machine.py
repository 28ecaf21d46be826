"""Machine state: flat DRAM, the four SRAMs and the four token queues (vta-spec §3.1).

SRAMs are kept as 2-D arrays of (depth, lanes) in the scalar dtype of their width, so loads
see them as rows of bytes and GEMM/ALU as rows of lanes. The uop SRAM additionally keeps its
three decoded index fields, refreshed on every UOP load, so GEMM/ALU never re-decode words.
"""
from __future__ import annotations

import numpy as np

from compiler import isa

from ._errors import SimulationError
from ._limits import DEFAULT_WORK_LIMIT

SUPPORTED_WIDTHS = (4, 8, 16, 32)


def scalar_dtype(width: int, what: str) -> np.dtype:
    """The SRAM lane dtype of ``width``-bit scalars; 4-bit lanes are held sign-extended in int8
    (DRAM keeps them packed two to a byte, the DMA unpacks and packs)."""
    if width not in SUPPORTED_WIDTHS:
        raise SimulationError(f"{what} of {width} bits is not supported by the simulator "
                              f"(only {', '.join(map(str, SUPPORTED_WIDTHS))}-bit scalars)")
    return np.dtype(f"int{max(width, 8)}")


_ARRAYS = frozenset(("dram", "uop", "uop_dst", "uop_src", "uop_wgt", "inp", "wgt", "acc", "_rows"))


class Machine:
    """The state one ``Simulator`` owns; persistent across runs, zero-initialised.

    The DRAM and SRAM arrays are allocated on first touch, so a count-only run whose machine
    nobody inspects never pays for them.
    """

    def __init__(self, env, dram_size: int):
        if dram_size <= 0:
            raise SimulationError(f"dram_size must be positive, got {dram_size}")
        self.env = env
        self.dram_size = int(dram_size)
        self.inp_dtype = scalar_dtype(env.INP_WIDTH, "INP_WIDTH")
        self.wgt_dtype = scalar_dtype(env.WGT_WIDTH, "WGT_WIDTH")
        self.acc_dtype = scalar_dtype(env.ACC_WIDTH, "ACC_WIDTH")
        self.out_dtype = scalar_dtype(env.OUT_WIDTH, "OUT_WIDTH")
        self.tokens = [0, 0, 0, 0]  # l2g, g2l, s2g, g2s; never cleared between runs (§3.7)
        # Everything a cached GEMM/ALU index plan depends on besides the instruction and its uops.
        self.geometry = (env.BATCH, env.BLOCK_IN, env.BLOCK_OUT, env.INP_WIDTH, env.WGT_WIDTH,
                         env.ACC_WIDTH, env.INP_DEPTH, env.WGT_DEPTH, env.ACC_DEPTH)

    def __getattr__(self, name):
        # Only reached for attributes not set yet: the arrays, before their first use.
        if name not in _ARRAYS:
            raise AttributeError(name)
        self._allocate()
        return self.__dict__[name]

    def _allocate(self) -> None:
        env = self.env
        self.dram = np.zeros(self.dram_size, dtype=np.uint8)
        self.uop = np.zeros(env.UOP_DEPTH, dtype=np.uint32)
        self.uop_dst = np.zeros(env.UOP_DEPTH, dtype=np.int64)
        self.uop_src = np.zeros(env.UOP_DEPTH, dtype=np.int64)
        self.uop_wgt = np.zeros(env.UOP_DEPTH, dtype=np.int64)
        self.inp = np.zeros((env.INP_DEPTH, env.BATCH * env.BLOCK_IN), dtype=self.inp_dtype)
        self.wgt = np.zeros((env.WGT_DEPTH, env.BLOCK_OUT * env.BLOCK_IN), dtype=self.wgt_dtype)
        self.acc = np.zeros((env.ACC_DEPTH, env.BATCH * env.BLOCK_OUT), dtype=self.acc_dtype)
        # The arrays are only ever written in place, so their byte views stay valid.
        self._rows = {mtype: arr.view(np.uint8).reshape(arr.shape[0], -1) for mtype, arr in
                      ((isa.MEM_UOP, self.uop), (isa.MEM_INP, self.inp), (isa.MEM_WGT, self.wgt),
                       (isa.MEM_ACC, self.acc))}

    def lanes(self, memory_type: int) -> np.ndarray:
        """The SRAM of ``memory_type`` as (depth, lanes) scalars."""
        return {isa.MEM_INP: self.inp, isa.MEM_WGT: self.wgt, isa.MEM_ACC: self.acc}[memory_type]

    def sram_rows(self, memory_type: int) -> np.ndarray:
        """The SRAM of ``memory_type`` as (depth, element bytes) uint8 rows."""
        return self._rows[memory_type]

    def refresh_uops(self, lo: int, hi: int) -> None:
        dst, src, wgt = isa.decode_uop_fields(self.uop[lo:hi], self.env)
        self.uop_dst[lo:hi], self.uop_src[lo:hi], self.uop_wgt[lo:hi] = dst, src, wgt

    def reset(self) -> None:
        for arr in (self.uop, self.uop_dst, self.uop_src, self.uop_wgt, self.inp, self.wgt, self.acc):
            arr[...] = 0
        self.tokens[:] = [0, 0, 0, 0]

    # ---- all-or-nothing runs -------------------------------------------------------------
    # A run that raises (a data-dependent index error, the work limit, Ctrl-C, out of memory)
    # must leave the machine exactly as it found it: leftover tokens or half-written SRAMs would
    # silently corrupt the next, correct run. The SRAMs a run can write are copied before it
    # (they are small next to the work of a run); DRAM writes (STOREs, uop placement, argument
    # copies) are undone from a log of the bytes they overwrote. Checkpoints nest: a module's
    # run (several programs) is one, each program's execute another.
    work_limit = DEFAULT_WORK_LIMIT

    def checkpoint(self, srams) -> tuple:
        """State to ``restore`` after a failed run that may write ``srams`` (names of arrays);
        every checkpoint is closed by exactly one ``restore`` or ``commit``."""
        self.__dict__.setdefault("_logs", []).append([])
        if "acc" not in self.__dict__:   # not allocated yet: all zeros, which a restore re-creates
            return list(self.tokens), None
        return list(self.tokens), {name: self.__dict__[name].copy() for name in srams}

    def log_dram(self, view: np.ndarray) -> None:
        """Record the bytes a DRAM write through ``view`` is about to overwrite."""
        logs = self.__dict__.get("_logs")
        if logs:
            logs[-1].append((view, view.copy()))

    def restore(self, saved: tuple) -> None:
        tokens, copies = saved
        log = self._logs.pop()
        self.tokens[:] = tokens
        if copies is None:
            for name in _ARRAYS:
                self.__dict__.pop(name, None)
            return
        for name, copy in copies.items():
            self.__dict__[name][...] = copy
        for view, old in reversed(log):
            view[...] = old

    def commit(self) -> None:
        log = self._logs.pop()
        if self._logs:   # an enclosing checkpoint may still have to undo these writes
            self._logs[-1].extend(log)

"""Cycle model of VTA's four decoupled modules (fetch, load, compute, store).

The modules run concurrently; each executes its own command queue strictly in program order and
waits on the four dependency-token queues, as the hardware does (vta-spec §7.1). Instruction
costs follow the HLS design (§7.2): DMA pays a per-request latency per row plus bytes over the
AXI bus width, zero padding is written one SRAM element at a time, GEMM issues one
uop-iteration per cycle after a pipeline fill, the ALU one every ``alu_ii`` cycles.

The model is event-driven over instructions, never over data, so timing a program costs a
small fraction of executing it. The parameters are not yet calibrated against board figures;
see ``TimingParams`` for where each default comes from.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from compiler.isa import (FINISH, GEMM, LOAD, MEM_ACC, MEM_ACC_8BIT, MEM_UOP, STORE, AluInsn, GemmInsn, Insn,
                          MemInsn, elem_bytes)
from compiler.isa import module_of as _route

from ._decode import FLAG_NAMES, MODULE_NAMES, MODULE_QUEUES, QUEUE_NAMES

MODULES = MODULE_NAMES
QUEUES = QUEUE_NAMES
# (module, flag) -> token queue, from the simulator's routing table (vta-spec §2.2)
_POP_QUEUE = {(MODULE_NAMES[m], FLAG_NAMES[f]): QUEUE_NAMES[q[f]]
              for m, q in MODULE_QUEUES.items() for f in (0, 1) if q[f] is not None}
_PUSH_QUEUE = {(MODULE_NAMES[m], FLAG_NAMES[f]): QUEUE_NAMES[q[f]]
               for m, q in MODULE_QUEUES.items() for f in (2, 3) if q[f] is not None}


class TimingError(ValueError):
    """A program whose timing cannot be modelled (its dependencies deadlock)."""


@dataclasses.dataclass(frozen=True)
class TimingParams:
    """Timing parameters of one VTA build, in cycles of the accelerator clock.

    Defaults: ``clock_mhz`` and the AXI width come from upstream ``pkg_config.py`` per target;
    ``gemm_ii = 1`` and ``alu_ii = 2`` from the HLS pragmas (PIPELINE II=1 on the GEMM uop loop,
    II=2 on the ALU loop); ``cmd_queue_depth = 512`` from the block design's command FIFOs.
    ``dma_latency`` (cycles from a burst request to its first beat), ``pipeline_fill`` and
    ``fetch_cycles_per_insn`` are model assumptions awaiting calibration on board figures.
    """

    clock_mhz: float = 100.0
    bus_bytes: int = 8
    dma_latency: int = 32
    pipeline_fill: int = 4
    gemm_ii: int = 1
    alu_ii: int = 2
    fetch_cycles_per_insn: int = 2
    cmd_queue_depth: int = 512

    @classmethod
    def for_env(cls, env, **overrides) -> "TimingParams":
        bus_bytes = env.BUS_WIDTH // 8
        base = dict(clock_mhz=float(env.fpga.freq_mhz), bus_bytes=bus_bytes,
                    fetch_cycles_per_insn=max(1, 16 // bus_bytes))
        base.update(overrides)
        return cls(**base)


@dataclasses.dataclass
class ModuleTime:
    busy: int = 0       # cycles spent executing instructions
    stalled: int = 0    # cycles an available instruction waited for a dependency token
    instructions: int = 0


@dataclasses.dataclass
class TimingReport:
    cycles: int
    seconds: float
    modules: dict           # "fetch" / "load" / "compute" / "store" -> ModuleTime
    compute_split: dict     # busy cycles of compute by kind: gemm, alu, uop_load, acc_load, other
    dram_bytes: dict        # bytes moved per DRAM port: fetch, load, compute, store
    gemm_utilization: float  # uop-iterations done / cycles (1.0 = one per cycle, the peak)
    bound_by: str           # the module with the most busy cycles

    def as_row(self) -> dict:
        """Flat columns for a results table."""
        row = {"cycles": self.cycles, "latency_s": self.seconds, "gemm_utilization": self.gemm_utilization,
               "bound_by": self.bound_by}
        for name, mod in self.modules.items():
            row[f"{name}_busy_cycles"] = mod.busy
            row[f"{name}_stall_cycles"] = mod.stalled
        for name, value in self.compute_split.items():
            row[f"compute_{name}_cycles"] = value
        for name, value in self.dram_bytes.items():
            row[f"dram_{name}_bytes"] = value
        return row


def module_of(insn: Insn) -> str:
    """The module an instruction is routed to (vta-spec §2.2)."""
    return _route(insn.opcode, getattr(insn, "memory_type", 0))


class TimingModel:
    def __init__(self, env, params: TimingParams | None = None):
        self.env = env
        self.params = params or TimingParams.for_env(env)

    # ---- per-instruction cost ----------------------------------------------------------
    def _dma_cycles(self, insn: MemInsn) -> tuple[int, int]:
        """(cycles, DRAM bytes) of one LOAD/STORE."""
        if insn.x_size == 0:
            return 1, 0
        p = self.params
        elem = elem_bytes(self.env, insn.memory_type)
        row_bytes = insn.x_size * elem
        beats = -(-row_bytes // p.bus_bytes)
        cycles = insn.y_size * (p.dma_latency + beats)
        if insn.opcode == LOAD:
            x_total = insn.x_pad_0 + insn.x_size + insn.x_pad_1
            pad_elems = (insn.y_pad_0 + insn.y_pad_1) * x_total + insn.y_size * (insn.x_pad_0 + insn.x_pad_1)
            sram_elem = self.env.ACC_ELEM_BYTES if insn.memory_type == MEM_ACC_8BIT else elem
            cycles += pad_elems * -(-sram_elem // p.bus_bytes)
        return cycles, insn.y_size * row_bytes

    def cost(self, insn: Insn) -> tuple[int, int, str]:
        """(cycles, DRAM bytes, kind) of one instruction on its module."""
        p = self.params
        if isinstance(insn, MemInsn):
            cycles, nbytes = self._dma_cycles(insn)
            kind = {MEM_UOP: "uop_load", MEM_ACC: "acc_load", MEM_ACC_8BIT: "acc_load"}.get(insn.memory_type, "dma")
            return cycles, nbytes, kind if insn.opcode == LOAD else "dma"
        if isinstance(insn, GemmInsn):
            return p.pipeline_fill + insn.iterations * p.gemm_ii, 0, "gemm"
        if isinstance(insn, AluInsn):
            return p.pipeline_fill + insn.iterations * p.alu_ii, 0, "alu"
        return 1, 0, "other"

    # ---- the event-driven run ------------------------------------------------------------
    def estimate(self, instructions: Sequence[Insn], initial_tokens: dict | None = None) -> TimingReport:
        p = self.params
        queues = {m: [] for m in MODULES}          # per module: program indices
        for index, insn in enumerate(instructions):
            queues[module_of(insn)].append(index)
        n = len(instructions)
        dispatch = [None] * n                        # cycle the fetch module hands it over
        start_of = {m: [] for m in MODULES}          # start cycles in queue order
        push_times = {q: [0] * (initial_tokens or {}).get(q, 0) for q in QUEUES}
        pops_done = {q: 0 for q in QUEUES}
        free = {m: 0 for m in MODULES}
        nxt = {m: 0 for m in MODULES}
        position = {}
        for m, idxs in queues.items():
            for k, i in enumerate(idxs):
                position[i] = (m, k)
        times = {m: ModuleTime() for m in ("fetch",) + MODULES}
        split = {"gemm": 0, "alu": 0, "uop_load": 0, "acc_load": 0, "other": 0}
        dram = {"fetch": 16 * n, "load": 0, "compute": 0, "store": 0}
        fetch_next, fetch_clock, finish_end, gemm_iters = 0, 0, None, 0
        depth = p.cmd_queue_depth

        progress = True
        while progress:
            progress = False
            # fetch: in program order, blocked while the target queue is full
            while fetch_next < n:
                m, k = position[fetch_next]
                if k >= depth:
                    if len(start_of[m]) <= k - depth:
                        break
                    room = start_of[m][k - depth]
                else:
                    room = 0
                t = max(fetch_clock + p.fetch_cycles_per_insn, room)
                times["fetch"].stalled += max(0, room - (fetch_clock + p.fetch_cycles_per_insn))
                dispatch[fetch_next] = t
                fetch_clock = t
                fetch_next += 1
                progress = True
            for m in MODULES:
                idxs = queues[m]
                while nxt[m] < len(idxs):
                    i = idxs[nxt[m]]
                    if dispatch[i] is None:
                        break
                    insn = instructions[i]
                    need = [q for (mod, flag), q in _POP_QUEUE.items() if mod == m and getattr(insn, flag)]
                    if any(len(push_times[q]) <= pops_done[q] for q in need):
                        break
                    ready = max(free[m], dispatch[i])
                    token_time = max([push_times[q][pops_done[q]] for q in need], default=0)
                    begin = max(ready, token_time)
                    for q in need:
                        pops_done[q] += 1
                    cycles, nbytes, kind = self.cost(insn)
                    end = begin + cycles
                    times[m].stalled += begin - ready
                    times[m].busy += cycles
                    times[m].instructions += 1
                    dram[m] += nbytes
                    if m == "compute":
                        split[kind if kind in split else "other"] += cycles
                    if insn.opcode == GEMM and not insn.reset_reg:
                        gemm_iters += insn.iterations
                    start_of[m].append(begin)
                    free[m] = end
                    for (mod, flag), q in _PUSH_QUEUE.items():
                        if mod == m and getattr(insn, flag):
                            push_times[q].append(end)
                    if insn.opcode == FINISH:
                        finish_end = end
                    nxt[m] += 1
                    progress = True
        if any(nxt[m] < len(queues[m]) for m in MODULES) or fetch_next < n:
            stuck = {m: queues[m][nxt[m]] for m in MODULES if nxt[m] < len(queues[m])}
            raise TimingError(f"dependencies deadlock: next instructions {stuck} cannot start; "
                              f"tokens pushed/popped {{{', '.join(f'{q}: {len(push_times[q])}/{pops_done[q]}' for q in QUEUES)}}}")
        cycles = max([finish_end or 0] + list(free.values()))
        times["fetch"].busy = n * p.fetch_cycles_per_insn
        times["fetch"].instructions = n
        bound = max(MODULES + ("fetch",), key=lambda name: times[name].busy)
        return TimingReport(
            cycles=cycles, seconds=cycles / (p.clock_mhz * 1e6), modules=times, compute_split=split,
            dram_bytes=dram, gemm_utilization=gemm_iters / cycles if cycles else 0.0, bound_by=bound)


def estimate(program, params: TimingParams | None = None) -> TimingReport:
    """Timing of a ``compiler.isa.Program`` on its environment's hardware."""
    return TimingModel(program.env, params).estimate(program.instructions)

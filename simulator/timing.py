"""Cycle model of VTA's four decoupled modules (fetch, load, compute, store).

The modules run concurrently; each executes its own command queue strictly in program order and
waits on the four dependency-token queues, as the hardware does (vta-spec §7.1). Instruction
costs follow the HLS design (§7.2): DMA pays a per-request latency per row plus bytes at the
sustained DRAM rate, zero padding is written one SRAM element at a time, GEMM issues one
uop-iteration per cycle after a pipeline fill, the ALU one every ``alu_ii`` cycles (``alu_ii_imm``
with an immediate operand).

The model is event-driven over instructions, never over data, so timing a program costs a
small fraction of executing it. Its parameters are part of the hardware config
(``hwconfigs.TimingParams``); docs/timing.md gives their sources and the calibration on a
Pynq-Z1.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from compiler.isa import (ALU, FINISH, GEMM, LOAD, MEM_ACC, MEM_ACC_8BIT, MEM_NAMES, MEM_UOP,
                          STORE, AluInsn, GemmInsn, Insn, MemInsn, elem_bytes)
from compiler.isa import module_of as _route
# The parameters are part of the hardware config (TIMING_* keys over per-target defaults);
# re-exported here as simulator.timing.TimingParams.
from hwconfigs import TimingParams

from ._decode import (COLUMNS, MODULE_NAMES, POPS, PUSHES, QUEUE_NAMES, Stream, as_columns, columns_from_objects,
                      flag_codes, op_module)

MODULES = MODULE_NAMES
QUEUES = QUEUE_NAMES


class TimingError(ValueError):
    """A program whose timing cannot be modelled (its dependencies deadlock)."""


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


_SPLIT = ("gemm", "alu", "uop_load", "acc_load", "other")
_COST_TABLES: dict = {}
_SPLIT_GEMM, _SPLIT_ALU, _SPLIT_UOP, _SPLIT_ACC, _SPLIT_OTHER = range(5)


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
        beats = math.ceil(row_bytes / p.dram_bytes_per_cycle)
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
            ii = p.alu_ii_imm if insn.use_imm else p.alu_ii
            return p.pipeline_fill + insn.iterations * ii, 0, "alu"
        return 1, 0, "other"

    def _cost_tables(self):
        """Lookup arrays over opcode * 8 + memory_type (both 3-bit fields): DRAM element bytes
        of a LOAD/STORE (0 otherwise), cycles per padding element of a LOAD, the uop-iteration
        initiation interval of GEMM/ALU, and the compute split index."""
        p, env = self.params, self.env
        key = (p, env.ACC_ELEM_BYTES) + tuple(elem_bytes(env, t) for t in MEM_NAMES)
        found = _COST_TABLES.get(key)
        if found is None:
            elem, pad, ii, split = (np.zeros(64, dtype=np.int64) for _ in range(4))
            split[:] = _SPLIT_OTHER
            for t in MEM_NAMES:
                for op in (LOAD, STORE):
                    elem[op * 8 + t] = elem_bytes(env, t)
                sram_elem = env.ACC_ELEM_BYTES if t == MEM_ACC_8BIT else elem_bytes(env, t)
                pad[LOAD * 8 + t] = -(-sram_elem // p.bus_bytes)
            split[LOAD * 8 + MEM_UOP] = _SPLIT_UOP
            split[LOAD * 8 + MEM_ACC] = split[LOAD * 8 + MEM_ACC_8BIT] = _SPLIT_ACC
            split[GEMM * 8:GEMM * 8 + 8], ii[GEMM * 8:GEMM * 8 + 8] = _SPLIT_GEMM, p.gemm_ii
            split[ALU * 8:ALU * 8 + 8], ii[ALU * 8:ALU * 8 + 8] = _SPLIT_ALU, p.alu_ii
            found = _COST_TABLES[key] = (elem, pad, ii, split)
        return found

    def _costs(self, c: dict):
        """``cost`` of every instruction of a column table at once: (cycles, DRAM bytes, compute
        split index, GEMM uop-iterations) arrays."""
        p = self.params
        elem, pad, ii, split = self._cost_tables()
        op, mtype = c["opcode"], c["memory_type"]
        x, y = c["x_size"], c["y_size"]
        in_range = (op >= 0) & (op < 8) & (mtype >= 0) & (mtype < 8)
        key = np.where(in_range, op * 8 + mtype, FINISH * 8)   # others cost what FINISH costs
        is_mem = (op == LOAD) | (op == STORE)
        active = is_mem & (x != 0)
        e = elem[key]
        if np.any(active & (e == 0)):
            elem_bytes(self.env, int(mtype[np.argmax(active & (e == 0))]))   # raises, naming the memory type
        row_bytes = x * e
        pad_elems = (c["y_pad_0"] + c["y_pad_1"]) * (c["x_pad_0"] + x + c["x_pad_1"]) + y * (c["x_pad_0"] + c["x_pad_1"])
        beats = np.ceil(row_bytes / p.dram_bytes_per_cycle).astype(np.int64)
        cycles = np.where(active, y * (p.dma_latency + beats) + pad_elems * pad[key], 1)
        iterations = c["iter_out"] * c["iter_in"] * (c["uop_end"] - c["uop_bgn"])
        step = np.where((op == ALU) & (c["use_imm"] != 0), p.alu_ii_imm, ii[key])
        cycles = np.where((op == GEMM) | (op == ALU), p.pipeline_fill + iterations * step, cycles)
        nbytes = np.where(active, y * row_bytes, 0)
        gemm_iters = np.where((op == GEMM) & (c["reset_reg"] == 0), iterations, 0)
        return cycles, nbytes, split[key], gemm_iters

    # ---- the event-driven run ------------------------------------------------------------
    def estimate(self, instructions, initial_tokens: dict | None = None) -> TimingReport:
        """Timing of a sequence of ``Insn`` objects (or a simulator ``Stream``), starting from
        ``initial_tokens`` in the dependency queues."""
        tokens = [int((initial_tokens or {}).get(q, 0)) for q in QUEUES]
        if isinstance(instructions, Stream):
            if instructions.timing_table is None:   # the decoded routing holds for the objects too
                s = instructions
                return self._estimate(s.cols, s.module_array, s.module, s.fifos, s.pops, s.pushes, tokens)
            table = instructions.timing_table
        else:
            instructions = list(instructions)
            table = columns_from_objects(instructions)[0] if instructions else np.zeros((len(COLUMNS), 0), np.int64)
            if table is None:
                kinds = sorted({type(i).__name__ for i in instructions})
                raise TypeError(f"the cycle model times compiler.isa instructions with integer fields, "
                                f"got {', '.join(kinds)}")
        c = as_columns(table)
        op, mtype = c["opcode"], c["memory_type"]
        module_arr = op_module(op, mtype)
        codes = flag_codes(table, module_arr).tolist()
        queues = tuple(np.flatnonzero(module_arr == m).tolist() for m in range(3))
        return self._estimate(c, module_arr, module_arr.tolist(), queues, list(map(POPS.__getitem__, codes)),
                              list(map(PUSHES.__getitem__, codes)), tokens)

    def _estimate(self, c: dict, module_arr: np.ndarray, module: list, queues, pops: list, pushes: list,
                  tokens: list) -> TimingReport:
        p = self.params
        n = len(module)
        op = c["opcode"]
        cycles_arr, nbytes, split_idx, gemm_iters = self._costs(c)
        cycles = cycles_arr.tolist()
        finishes = np.flatnonzero(op == FINISH)
        last_finish = int(finishes[-1]) if finishes.size else -1
        fast = None
        if all(len(q) <= p.cmd_queue_depth for q in queues):
            fast = self._replay_in_order(module, pops, pushes, cycles, tokens, last_finish)
        if fast is not None:
            free, stalled, finish_end = fast
            fetch_stalled = 0
        else:
            start_of, free, stalled, nxt, dispatch, fetch_stalled, push_times, popped = self._replay(
                n, module, queues, pops, pushes, cycles, tokens)
            if any(nxt[m] < len(queues[m]) for m in range(3)) or None in dispatch:
                stuck = {MODULES[m]: queues[m][nxt[m]] for m in range(3) if nxt[m] < len(queues[m])}
                counts = ", ".join(f"{QUEUES[q]}: {len(push_times[q])}/{popped[q]}" for q in range(4))
                raise TimingError(f"dependencies deadlock: next instructions {stuck} cannot start; "
                                  f"tokens pushed/popped {{{counts}}}")
            finish_end = None
            if last_finish >= 0:
                finish_end = start_of[1][queues[1].index(last_finish)] + cycles[last_finish]
        busy = np.bincount(module_arr, weights=cycles_arr, minlength=3)
        moved = np.bincount(module_arr, weights=nbytes, minlength=3)
        on_compute = module_arr == 1
        split_cycles = np.bincount(split_idx[on_compute], weights=cycles_arr[on_compute], minlength=len(_SPLIT))
        return self._report(n, [len(q) for q in queues], busy, moved, split_cycles, int(gemm_iters.sum()),
                            free, stalled, fetch_stalled, finish_end)

    def estimate_columns(self, table: np.ndarray, initial_tokens: dict | None = None) -> TimingReport:
        """``estimate`` of a stream given as a (len(COLUMNS), n) column table (any integer
        dtype and strides), costed and replayed by compiled loops (``_replay``)."""
        return self.count_rows(table.T, initial_tokens)[1]

    def count_rows(self, rows: np.ndarray, initial_tokens: dict | None = None, repeats: np.ndarray | None = None):
        """(counters list, TimingReport) of a stream given one row per instruction (the
        COLUMNS in order): the decoder's counters and ``estimate``'s report, from compiled
        loops: one pass in program order when every token is pushed before it is popped (the
        streams the runtime emits), else costs then the event-driven replay."""
        from ._decode import _tables
        from ._replay import count_in_order, replay, stream_costs

        p, env = self.params, self.env
        tokens = np.array([int((initial_tokens or {}).get(q, 0)) for q in QUEUES], dtype=np.int64)
        elem, pad, ii, split = self._cost_tables()
        t, _ = _tables(env)
        pop_tab, push_tab = _flag_arrays()
        args = (rows, elem, pad, ii, split, t["counter"], t["unit"], t["load"], t["store"], pop_tab, push_tab,
                int(p.dma_latency), float(p.dram_bytes_per_cycle), int(p.pipeline_fill), int(p.alu_ii_imm),
                int(env.OUT_ELEM_BYTES))
        (ok, busy, moved, split_cycles, iters, counters, free, stalled, qlen, fetch_stalled,
         finish_end, self.skipped_rows) = count_in_order(*args, tokens, int(p.fetch_cycles_per_insn), int(p.cmd_queue_depth),
                                      _NO_REPEATS if repeats is None else np.asarray(repeats, dtype=np.int64))
        if ok:
            report = self._report(rows.shape[0], qlen.tolist(), busy.tolist(), moved.tolist(),
                                  split_cycles.tolist(), int(iters), free.tolist(), stalled.tolist(),
                                  int(fetch_stalled), int(finish_end) if finish_end >= 0 else None)
            return counters.tolist(), report
        # a token popped before it is pushed in program order: the event-driven replay
        (cycles, module, pop0, pop1, push0, push1, busy, moved, split_cycles, iters, counters,
         last_finish) = stream_costs(rows, elem, pad, ii, split, t["counter"], t["unit"], t["load"], t["store"],
                                     pop_tab, push_tab, int(p.dma_latency), float(p.dram_bytes_per_cycle),
                                     int(p.pipeline_fill), int(p.alu_ii_imm), int(env.OUT_ELEM_BYTES))
        start, free, stalled, nxt, qlen, done, fetch_stalled, pushed, popped = replay(
            module, pop0, pop1, push0, push1, cycles, tokens, int(p.fetch_cycles_per_insn), int(p.cmd_queue_depth))
        if np.any(nxt < qlen) or not done:
            queues = tuple(np.flatnonzero(module == m) for m in range(3))
            stuck = {MODULES[m]: int(queues[m][nxt[m]]) for m in range(3) if nxt[m] < qlen[m]}
            counts = ", ".join(f"{QUEUES[q]}: {int(pushed[q])}/{int(popped[q])}" for q in range(4))
            raise TimingError(f"dependencies deadlock: next instructions {stuck} cannot start; "
                              f"tokens pushed/popped {{{counts}}}")
        finish_end = int(start[last_finish] + cycles[last_finish]) if last_finish >= 0 else None
        report = self._report(rows.shape[0], qlen.tolist(), busy.tolist(), moved.tolist(), split_cycles.tolist(),
                              int(iters), free.tolist(), stalled.tolist(), int(fetch_stalled), finish_end)
        return counters.tolist(), report

    def _report(self, n, queue_lengths, busy, moved, split_cycles, iters, free, stalled, fetch_stalled,
                finish_end) -> TimingReport:
        """The report from the per-module sums (every instruction ran, else a deadlock error)."""
        p = self.params
        total = max([finish_end or 0] + list(free))
        times = {"fetch": ModuleTime(n * p.fetch_cycles_per_insn, fetch_stalled, n)}
        dram = {"fetch": 16 * n}
        for m, name in enumerate(MODULES):
            times[name] = ModuleTime(int(busy[m]), stalled[m], queue_lengths[m])
            dram[name] = int(moved[m])
        split = {name: int(split_cycles[k]) for k, name in enumerate(_SPLIT)}
        bound = max(MODULES + ("fetch",), key=lambda name: times[name].busy)
        return TimingReport(
            cycles=total, seconds=total / (p.clock_mhz * 1e6), modules=times, compute_split=split,
            dram_bytes=dram, gemm_utilization=iters / total if total else 0.0, bound_by=bound)

    def _replay_in_order(self, module, pops, pushes, cycles, tokens, last_finish):
        """``_replay`` in one pass over program order, valid when no command queue fills (fetch
        hands instruction i over at cycle (i+1)*fetch_cycles_per_insn) and every token an
        instruction pops was pushed by an earlier instruction or was there initially: then the
        k-th pop of a queue (its one consumer module runs in order) meets the k-th push (its one
        producer module runs in order) exactly as in the event-driven run. (free, stalled,
        end of the last FINISH); None when a token comes from a later instruction."""
        fc = self.params.fetch_cycles_per_insn
        pushed = tuple([0] * tokens[q] for q in range(4))   # end cycle of every push, in order
        popped = [0, 0, 0, 0]
        free, stalled = [0, 0, 0], [0, 0, 0]
        dispatch, finish_end = 0, None
        for i, m in enumerate(module):
            dispatch += fc
            ready = free[m]
            if dispatch > ready:
                ready = dispatch
            need = pops[i]
            if need:
                begin = ready
                for q in need:
                    k = popped[q]
                    times = pushed[q]
                    if k >= len(times):
                        return None
                    popped[q] = k + 1
                    if times[k] > begin:
                        begin = times[k]
                stalled[m] += begin - ready
                free[m] = end = begin + cycles[i]
            else:
                free[m] = end = ready + cycles[i]
            out = pushes[i]
            if out:
                for q in out:
                    pushed[q].append(end)
            if i == last_finish:
                finish_end = end
        return free, stalled, finish_end

    def _replay(self, n, module, queues, pops, pushes, cycles, tokens):
        """The event-driven run: fetch hands instructions over in program order (blocked while
        the target command queue is full); each module starts its next instruction when it is
        free, the instruction is dispatched and its tokens have been pushed."""
        p = self.params
        fc, depth = p.fetch_cycles_per_insn, p.cmd_queue_depth
        push_times = [[0] * tokens[q] for q in range(4)]
        popped = [0, 0, 0, 0]
        start_of = ([], [], [])
        free, stalled, nxt = [0, 0, 0], [0, 0, 0], [0, 0, 0]
        fetch_stalled = 0
        if all(len(q) <= depth for q in queues):
            # No command queue ever fills: fetch never waits.
            dispatch = list(range(fc, fc * (n + 1), fc))
            fetch_next, position = n, None
        else:
            dispatch, fetch_next, fetch_clock = [None] * n, 0, 0
            position = [0] * n
            for q in queues:
                for k, i in enumerate(q):
                    position[i] = k
        progress = True
        while progress:
            progress = False
            while fetch_next < n:
                m, k = module[fetch_next], position[fetch_next]
                if k >= depth:
                    if len(start_of[m]) <= k - depth:
                        break
                    room = start_of[m][k - depth]
                else:
                    room = 0
                t = fetch_clock + fc
                if room > t:
                    fetch_stalled += room - t
                    t = room
                dispatch[fetch_next] = fetch_clock = t
                fetch_next += 1
                progress = True
            for m in (0, 1, 2):
                q, h = queues[m], nxt[m]
                end = len(q)
                if h == end:
                    continue
                f, st, begins = free[m], stalled[m], start_of[m]
                while h < end:
                    i = q[h]
                    ready = dispatch[i]
                    if ready is None:
                        break
                    need = pops[i]
                    token_time = 0
                    if need:
                        if len(push_times[need[0]]) <= popped[need[0]] or (
                                len(need) > 1 and len(push_times[need[1]]) <= popped[need[1]]):
                            break
                        for qq in need:
                            t = push_times[qq][popped[qq]]
                            popped[qq] += 1
                            if t > token_time:
                                token_time = t
                    if f > ready:
                        ready = f
                    begin = token_time if token_time > ready else ready
                    st += begin - ready
                    begins.append(begin)
                    f = begin + cycles[i]
                    for qq in pushes[i]:
                        push_times[qq].append(f)
                    h += 1
                if h != nxt[m]:
                    nxt[m], free[m], stalled[m] = h, f, st
                    progress = True
        return start_of, free, stalled, nxt, dispatch, fetch_stalled, push_times, popped


_FLAG_ARRAYS: list = []
_NO_REPEATS = np.zeros((0, 3), dtype=np.int64)


def _flag_arrays():
    """POPS and PUSHES of every flag code as (48, 2) arrays of queue indices (-1: none)."""
    if not _FLAG_ARRAYS:
        def table(entries):
            return np.array([[e[k] if len(e) > k else -1 for k in range(2)] for e in entries], dtype=np.int64)
        _FLAG_ARRAYS.extend([table(POPS), table(PUSHES)])
    return _FLAG_ARRAYS


def estimate(program, params: TimingParams | None = None) -> TimingReport:
    """Timing of a ``compiler.isa.Program`` on its environment's hardware."""
    return TimingModel(program.env, params).estimate(program.instructions)

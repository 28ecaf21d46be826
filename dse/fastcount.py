"""Count-only evaluation of one candidate fast enough for deep search.

    res = dse.fastcount.count_candidate(layer, env, knobs)
    res.stats, res.cycles, res.seconds, res.timing, res.timing_row, res.footprint

Equal to ``simulator.run(workloads.build(layer, env=env, knobs=knobs), count_only=True)`` (every
counter, the cycles and every TimingReport field) plus ``Module.footprint()``, and raises
``compiler.CompileError`` exactly when that build would. The instruction stream comes straight
from the knobs as columns (``compiler.workloads._streams``) and is counted and timed on the
columns (``simulator.count_columns``, a compiled replay); constructs the generator does not
cover take the general path (``res.path == "general"``), so the answer is the same either way:
today the conv layers (Conv2D, GroupConv2D, Conv2DTranspose) and Elementwise are generated, Dense layers (and a conv whose uop kernels
would overflow the uop SRAM within one stream) are built.
The first call in a process compiles (or loads from numba's cache) the two compiled loops.
"""
from __future__ import annotations

import dataclasses

import simulator
from compiler import workloads


@dataclasses.dataclass
class FastCount:
    """Counters (``RunResult.stats`` keys), cycles/seconds of the cycle model, one TimingReport
    per program, the module's buffer footprint in bytes and which path produced them."""

    stats: dict
    cycles: int
    seconds: float
    timing: list
    footprint: dict
    path: str

    @property
    def timing_row(self) -> dict:
        """The TimingReport's ``as_row()`` columns (summed over programs when there are several:
        cycles, latency, busy/stall cycles, compute split and DRAM bytes add up; utilization
        is recomputed, bound_by is the module with most busy cycles)."""
        rows = [report.as_row() for report in self.timing]
        if len(rows) == 1:
            return rows[0]
        merged = {key: sum(row[key] for row in rows) for key in rows[0]
                  if key not in ("gemm_utilization", "bound_by")}
        iters = sum(r.gemm_utilization * r.cycles for r in self.timing)
        merged["gemm_utilization"] = iters / merged["cycles"] if merged["cycles"] else 0.0
        busy = {name: merged[f"{name}_busy_cycles"] for name in ("load", "compute", "store", "fetch")}
        merged["bound_by"] = max(("load", "compute", "store", "fetch"), key=busy.__getitem__)
        return merged


def count_candidate(layer, env, knobs, timing_params=None) -> FastCount:
    """Count-only result of one (layer, hardware env, knobs) candidate; see the module doc."""
    streams = workloads.stream_columns(layer, env, knobs, reuse=True)   # raises CompileError for refused knobs
    if streams is None:
        mod = workloads.build(layer, env=env, knobs=knobs)
        res = simulator.run(mod, count_only=True, timing_params=timing_params)
        return FastCount(res.stats, res.cycles, res.seconds, res.timing, mod.footprint(), "general")
    stats, report = simulator.count_columns(env, streams.table, timing_params, repeats=streams.repeats)
    return FastCount(stats, report.cycles, report.seconds, [report], streams.footprint, "fast")


def warm_up(env=None) -> float:
    """Compile (or load from numba's on-disk cache) the fast path's loops now, on two tiny
    candidates, instead of inside the first real one; returns the seconds it took. A cold compile
    takes tens of seconds once per machine (the cache sits beside the sources, shared by every
    process); a cache load about half a second per process."""
    import time

    import hwconfigs
    from compiler import workloads as w

    env = env or hwconfigs.get_env()
    t0 = time.perf_counter()
    conv = w.Conv2D(env.BATCH, 4, 4, env.BLOCK_IN, env.BLOCK_OUT, 3, 1, 1, epilogue=(("bias",), ("shr", 1)))
    count_candidate(conv, env, None)
    count_candidate(w.Elementwise(env.BATCH, env.BLOCK_OUT, 4, 4, "add"), env, None)
    return time.perf_counter() - t0

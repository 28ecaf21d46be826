"""``simulator.run``: call a built :class:`compiler.module.Module` on the functional simulator,
the way upstream's tutorials call the built function on ``vta.simulator``.

Every argument array is copied into DRAM at its buffer's physical address, the programs run in
order (each program's uops are copied into the uop staging buffer first, as upstream does at
every synchronize), and the buffers the programs store to are copied back into the caller's
arrays in place.

Each program is decoded once, for both the cycle model and the run. A count-only run on the
private simulator ``run`` creates moves no data at all: nobody can look at its SRAMs, so even
the UOP loads are skipped (their bounds are still checked when the stream is decoded).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from compiler import isa

from ._errors import SimulationError


@dataclasses.dataclass
class RunResult:
    """Counters of one run (summed over the module's programs), its modelled latency in
    accelerator cycles and seconds, and the per-program counters and timing breakdowns."""

    stats: dict
    cycles: int | None = None
    seconds: float | None = None
    program_stats: list = dataclasses.field(default_factory=list)
    timing: list = dataclasses.field(default_factory=list)


def _check_binding(mod, arrays) -> list[np.ndarray]:
    if len(arrays) != len(mod.args):
        names = ", ".join(a.name for a in mod.args)
        raise SimulationError(f"module {mod.name!r} takes {len(mod.args)} arrays ({names}), got {len(arrays)}")
    bound = []
    for index, (arg, array) in enumerate(zip(mod.args, arrays)):
        what = f"argument {index} ({arg.name!r}) of module {mod.name!r}"
        if not isinstance(array, np.ndarray):
            raise SimulationError(f"{what}: expected a numpy array, got {type(array).__name__}")
        if array.dtype != isa.host_dtype(arg.dtype):
            held = f" (as {isa.host_dtype(arg.dtype)} values)" if isa.dtype_bits(arg.dtype) < 8 else ""
            raise SimulationError(f"{what}: dtype {array.dtype}, the buffer holds {arg.dtype}{held}")
        if tuple(array.shape) != tuple(arg.shape):
            raise SimulationError(f"{what}: shape {tuple(array.shape)}, the buffer has shape {tuple(arg.shape)}")
        if arg.is_output and not array.flags.writeable:
            raise SimulationError(f"{what}: the result is written into it in place, but the array is read-only")
        bound.append(array)
    return bound


def _device_bytes(arg, array) -> np.ndarray:
    """The DRAM image of one argument: its bytes, or its scalars packed when narrower than a byte."""
    bits = isa.dtype_bits(arg.dtype)
    flat = np.ascontiguousarray(array).reshape(-1)
    if bits >= 8:
        return flat.view(np.uint8)
    signed = not arg.dtype.startswith("uint")
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if flat.size and (flat.min() < low or flat.max() > high):
        raise SimulationError(f"argument {arg.name!r} holds {arg.dtype} values, so in [{low}, {high}]; "
                         f"got [{flat.min()}, {flat.max()}]")
    per = 8 // bits
    padded = np.zeros(-(-flat.size // per) * per, dtype=flat.dtype)
    padded[:flat.size] = flat
    return isa.pack_scalars(padded, bits)


def _host_values(arg, raw: np.ndarray, array: np.ndarray) -> np.ndarray:
    """The values of ``array``'s shape and dtype held in ``raw``, the DRAM image of ``arg``
    (the inverse of ``_device_bytes``)."""
    bits = isa.dtype_bits(arg.dtype)
    if bits < 8:
        signed = not arg.dtype.startswith("uint")
        return isa.unpack_scalars(raw, bits, signed)[:array.size].reshape(array.shape)
    return np.frombuffer(raw.tobytes(), dtype=array.dtype).reshape(array.shape)


def _new_simulator(mod, sim, work_limit=None):
    if sim is None:
        from simulator import Simulator   # late: simulator/__init__ re-exports this module
        return Simulator(mod.env, dram_size=mod.dram_size, work_limit=work_limit)
    from simulator import Simulator
    if work_limit is not None:
        raise SimulationError("work_limit bounds a fresh simulator; a given sim has its own (Simulator(work_limit=...))")
    if not isinstance(sim, Simulator):
        raise SimulationError(f"sim must be a simulator.Simulator, got {type(sim).__name__}")
    if sim.env != mod.env:
        raise SimulationError(f"module {mod.name!r} was built for {mod.env!r}, the simulator is {sim.env!r}")
    if sim.dram_size < mod.dram_size:
        raise SimulationError(f"simulator DRAM of {sim.dram_size} B is smaller than the {mod.dram_size} B "
                         f"module {mod.name!r} needs")
    return sim


def run(mod, *arrays, count_only: bool = False, sim=None, timing_params=None, work_limit=None) -> RunResult:
    """Run ``mod`` on a fresh simulator (or ``sim``); arrays bind to ``mod.args`` in order.

    With ``count_only`` the data are not computed and the arrays may be omitted. Each program
    (one per synchronize) is also timed by the cycle model, starting from the tokens the
    previous programs left in the queues, as on the device. ``work_limit`` (a
    ``simulator.WorkLimit``) bounds the work of each program of a fresh simulator.
    """
    from compiler.module import Module
    from simulator.timing import TimingModel

    if not isinstance(mod, Module):
        raise SimulationError(f"simulator.run takes a compiler.Module, got {type(mod).__name__}")

    model = TimingModel(mod.env, timing_params)
    bound = [] if (count_only and not arrays) else _check_binding(mod, arrays)
    private = sim is None
    sim = _new_simulator(mod, sim, work_limit)
    m = sim._m
    # On a caller's simulator the whole call is all-or-nothing too (each program's execute
    # already is): a failing later program must not leave the earlier ones' effects behind.
    saved = None if private else m.checkpoint(("uop", "uop_dst", "uop_src", "uop_wgt", "inp", "wgt", "acc"))
    try:
        for arg, array in zip(mod.args, bound):
            view = sim.dram[arg.phys_addr:arg.phys_addr + arg.nbytes]
            m.log_dram(view)
            view[...] = _device_bytes(arg, array)
        totals: dict = {}
        per_program, reports = [], []
        for program in mod.programs:
            stream = sim._decode(program)   # once, for both the cycle model and the run
            reports.append(model.estimate(stream, initial_tokens=sim.tokens))
            stats = sim._run_stream(stream, program, count_only=count_only, private=private)
            per_program.append(stats)
            for key, value in stats.items():
                totals[key] = totals.get(key, 0) + value
    except BaseException:
        if saved is not None:
            m.restore(saved)
        raise
    if saved is not None:
        m.commit()
    if not count_only:
        for arg, array in zip(mod.args, bound):
            if arg.is_output:
                array[...] = _host_values(arg, sim.dram[arg.phys_addr:arg.phys_addr + arg.nbytes], array)
    cycles = sum(report.cycles for report in reports)
    return RunResult(stats=totals, cycles=cycles, seconds=cycles / (model.params.clock_mhz * 1e6),
                     program_stats=per_program, timing=reports)


def count_columns(env, table: np.ndarray, timing_params=None, initial_tokens: dict | None = None, repeats=None):
    """Counters and cycle model of one program given as a (len(COLUMNS), n) column table (the
    layout of ``simulator._decode.COLUMNS``), without decoding or running it: ``(stats dict,
    TimingReport)``. The stream is trusted (no static checks): callers pass what a compiler
    generator emitted, e.g. ``compiler.workloads``' column streams. Same counters and report
    as ``run(mod, count_only=True)`` on the program those columns describe. ``repeats``, rows of
    (column, period, count) saying columns [column, column + period * count) repeat the period
    before, is an optional hint that lets the count skip work (the table still holds every
    instruction; a hint that does not hold is ignored)."""
    from simulator._counters import as_dict

    counters, report = _model(env, timing_params).count_rows(np.asarray(table).T, initial_tokens, repeats)
    return as_dict(counters), report


_MODELS: dict = {}


def _model(env, timing_params):
    """One TimingModel per (env, timing parameters): building one resolves the parameters."""
    key = (id(env), timing_params)
    found = _MODELS.get(key)
    if found is None or found[0] is not env:
        from simulator.timing import TimingModel

        if len(_MODELS) > 64:
            _MODELS.clear()
        found = _MODELS[key] = (env, TimingModel(env, timing_params))
    return found[1]

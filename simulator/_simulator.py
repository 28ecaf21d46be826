"""``Simulator``: the functional VTA machine behind one public object."""
from __future__ import annotations

import numpy as np

from compiler import isa

from . import _counters, _decode, _scheduler
from ._decode import QUEUE_NAMES
from ._errors import SimulationError
from ._limits import DEFAULT_WORK_LIMIT, WorkLimit
from ._machine import Machine


class Simulator:
    """Bit-exact functional model of upstream's fsim for one hardware environment.

    ``dram`` is a flat, writable uint8 array indexed by upstream physical byte address. SRAMs
    and token queues start at zero and persist across ``execute`` calls, as on the device.

    A call that raises — a program refused before it runs, an error found while it runs, the
    ``work_limit`` (:class:`WorkLimit`), Ctrl-C — leaves the machine exactly as before the call:
    SRAMs, token queues and DRAM.
    """

    def __init__(self, env, dram_size: int = 1 << 24, work_limit: WorkLimit | None = None):
        import hwconfigs   # late: only to name the type in the error
        if not isinstance(env, hwconfigs.Env):
            raise SimulationError(f"Simulator needs a hwconfigs.Env, got {type(env).__name__}")
        if isinstance(dram_size, bool) or not isinstance(dram_size, (int, np.integer)):
            raise SimulationError(f"dram_size must be an integer number of bytes, got {dram_size!r}")
        work_limit = DEFAULT_WORK_LIMIT if work_limit is None else work_limit
        if not isinstance(work_limit, WorkLimit):
            raise SimulationError(f"work_limit must be a simulator.WorkLimit, got {type(work_limit).__name__}")
        self.env = env
        self.work_limit = work_limit
        self._m = Machine(env, dram_size)
        self._m.work_limit = work_limit

    # ---- state, as views a user or test can inspect or poke ------------------------------
    @property
    def dram(self) -> np.ndarray:
        return self._m.dram

    @property
    def dram_size(self) -> int:
        return self._m.dram_size

    @property
    def inp(self) -> np.ndarray:
        """Input SRAM, (depth, BATCH, BLOCK_IN)."""
        return self._m.inp.reshape(-1, self.env.BATCH, self.env.BLOCK_IN)

    @property
    def wgt(self) -> np.ndarray:
        """Weight SRAM, (depth, BLOCK_OUT, BLOCK_IN)."""
        return self._m.wgt.reshape(-1, self.env.BLOCK_OUT, self.env.BLOCK_IN)

    @property
    def acc(self) -> np.ndarray:
        """Accumulator SRAM, (depth, BATCH, BLOCK_OUT) of int{ACC_WIDTH}."""
        return self._m.acc.reshape(-1, self.env.BATCH, self.env.BLOCK_OUT)

    @property
    def uop(self) -> np.ndarray:
        """Micro-op SRAM as packed uint32 words (read-only view: loads keep a decoded copy)."""
        view = self._m.uop.view()
        view.flags.writeable = False
        return view

    @property
    def tokens(self) -> dict[str, int]:
        """Current token count of each dependency queue (l2g, g2l, s2g, g2s)."""
        return dict(zip(QUEUE_NAMES, self._m.tokens))

    def reset(self) -> None:
        """Zero every SRAM and token queue (DRAM is left alone)."""
        self._m.reset()

    # ---- running ---------------------------------------------------------------------------
    def execute(self, program, count_only: bool = False) -> dict[str, int]:
        """Run a ``compiler.isa.Program`` or raw instruction bytes to FINISH.

        Returns the seven fsim counters of this run (``COUNTER_NAMES`` order). With
        ``count_only`` the counters are computed but no data moves, except UOP loads, which
        upstream's skip-exec mode always performs (vta-spec §3.9).
        """
        return self._run_stream(self._decode(program), program, count_only)

    def _decode(self, program) -> _decode.Stream:
        """The statically checked ``Stream`` of a Program or raw bytes (raises SimulationError)."""
        return _decode.decode(program, self.env, self.dram_size, self.work_limit)

    def _run_stream(self, stream: _decode.Stream, program=None, count_only: bool = False,
                   private: bool = False) -> dict[str, int]:
        """Run a decoded stream; ``program`` (a Program) supplies its uops. ``private``: the
        caller discards this machine after a count-only run, so its uop SRAM is never looked
        at and even the UOP loads (and uop placement) are skipped."""
        skip_uops = count_only and private
        m = self._m
        # A private count-only run touches nothing anybody will look at; otherwise keep what the
        # run may write, to put it back if it raises.
        saved = m.checkpoint(() if skip_uops else
                             ("uop", "uop_dst", "uop_src", "uop_wgt") if count_only else
                             ("uop", "uop_dst", "uop_src", "uop_wgt", "inp", "wgt", "acc"))
        try:
            if isinstance(program, isa.Program) and len(program.uops):
                self._place_uops(program, write=not skip_uops)
            _scheduler.run(m, stream, count_only, load_uops=not skip_uops)
        except BaseException:
            # Leftover tokens or half-written SRAMs of a failed run would corrupt the next one.
            m.restore(saved)
            raise
        m.commit()
        return _counters.as_dict(stream.counters)

    def _place_uops(self, program, write: bool = True) -> None:
        lo, hi = program.uop_base, program.uop_base + 4 * len(program.uops)
        if lo < 0 or hi > self.dram_size:
            raise SimulationError(f"program uops at DRAM bytes [{lo:#x}, {hi:#x}) lie outside the simulated "
                                  f"DRAM of {self.dram_size:#x} bytes")
        if write:
            view = self._m.dram[lo:hi]
            self._m.log_dram(view)
            view[...] = program.uops.astype("<u4").view(np.uint8)

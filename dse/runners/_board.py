"""The ``board`` runner: the built module and its inputs go to a VTA board over RPC (``dse.board``).

The board runs the program and sends back the output, its wall time and, where the device has
them, the cycles and the seven counters (the simulated device has both). The output is checked
against numpy as the ``full`` runner checks the simulator's. ``latency_s`` is cycles at the
config's clock when the device counts cycles, otherwise the measured wall time; the wall time is
kept in ``wall_s`` either way. A failed board call is a ``run_error`` row naming the reason and the
board (``timeout`` when the candidate's time ran out); the pool retries another board first.
"""
from __future__ import annotations

import time

from .._columns import COUNTERS
from .._protocol import measurement
from ._deadline import Timeout, deadline
from ._stages import admit, build, compare_output


class BoardRunner:
    """Measures on the boards at ``boards`` (``host:port``), authenticated with ``token`` (or the
    token read from ``token_file``). Pickles without its connection pool: each process opens its
    own on first use, and the pool leases one board per candidate."""

    name = "board"
    # A board's figures depend on the device behind the address, not only on this code: they are
    # not shared with other studies through the user's cache.
    shares_cache = False

    def __init__(self, boards, token: str | None = None, token_file=None, retries: int = 2):
        from ..board import read_token

        self.boards = [str(b) for b in boards]
        self.token = token if token is not None else read_token(token_file)
        self.retries = retries
        self._pool = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pool": None}

    def _boards(self):
        if self._pool is None:
            from ..board import BoardPool

            self._pool = BoardPool(self.boards, self.token, retries=self.retries)
        return self._pool

    def measure(self, candidate, timeout_s: float | None = None) -> dict:
        t0 = time.perf_counter()
        try:
            return self._measure(candidate, timeout_s, t0)
        except Timeout:
            return measurement("timeout", f"candidate took longer than {timeout_s:g} s (stopped by the runner)",
                               compile_s=time.perf_counter() - t0)
        except Exception as exc:     # a bug below is this candidate's failure, not the study's
            return measurement("run_error", f"{type(exc).__name__}: {exc}")

    def _measure(self, candidate, timeout_s, t0) -> dict:
        from ..board import BoardError

        with deadline(timeout_s):       # the local stages; the board call gets what is left
            refused = admit(candidate) or build(candidate, t0)
            if refused is not None:
                return refused
            inputs = candidate.inputs()
            expected = candidate.reference(inputs)
            out = candidate.empty_output()
        compile_s = time.perf_counter() - t0
        left = None if not timeout_s else timeout_s - compile_s
        if left is not None and left <= 0:
            raise Timeout()
        t1 = time.perf_counter()
        try:
            run = self._boards().run_module(candidate.module, [*inputs, out], left)
        except BoardError as exc:
            status = "timeout" if exc.reason == "timeout" else "run_error"
            return measurement(status, f"{exc.reason}: {exc}", compile_s=compile_s, sim_s=time.perf_counter() - t1)
        status, error, correct = compare_output(out, expected, f"board {run.board}")
        stats = run.stats or {}
        clock_hz = candidate.env.timing.clock_mhz * 1e6
        return measurement(status, error, **{c: int(stats[c]) if c in stats else None for c in COUNTERS},
                           cycles=None if run.cycles is None else int(run.cycles),
                           latency_s=float(run.wall_s) if run.cycles is None else run.cycles / clock_hz,
                           wall_s=float(run.wall_s), correct=correct, compile_s=compile_s,
                           sim_s=time.perf_counter() - t1)

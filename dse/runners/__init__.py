"""Runners: what turns a candidate into a measurement (AutoTVM's Runner; the op library builds).

    from dse.runners import Candidate, make_runner
    runner = make_runner("count")            # "full"; "board" with boards=[...] and a token
    m = runner.measure(Candidate(layer, hw, knobs, seed), timeout_s=10.0)

Every runner has a ``name`` (it enters cache keys and the rows' ``mode`` column) and
``measure(candidate, timeout_s)``, which returns a ``dse._protocol.measurement`` dict with every
field present and NEVER raises on a bad candidate: a failure is a status (infeasible,
compile_error, run_error, timeout, mismatch). Runners pickle (they travel to Ray workers) and
behave the same after a round trip. ``tests/dse/test_runner_conformance.py`` holds every runner
to this contract.

- ``count``: counters + cycle model, without computing data (``dse.fastcount``);
- ``full``: a bit-exact simulator run, the output checked against numpy;
- ``board``: the module and inputs shipped to a VTA board (``dse.board``), output checked the same way.
"""
from __future__ import annotations

from typing import Protocol

from ._board import BoardRunner
from ._candidate import Candidate
from ._deadline import Timeout, deadline
from ._local import CountRunner, FullRunner
from ._stages import timing_columns

RUNNERS = ("count", "full", "board")


class Runner(Protocol):
    name: str
    shares_cache: bool       # its measurements may answer for other studies (a function of the code)

    def measure(self, candidate: Candidate, timeout_s: float | None = None) -> dict: ...


def make_runner(name: str, boards=(), token: str | None = None, token_file=None) -> Runner:
    """The runner called ``name`` (one of ``RUNNERS``); ``board`` takes the boards and their token."""
    if name == "count":
        return CountRunner()
    if name == "full":
        return FullRunner()
    if name == "board":
        return BoardRunner(boards, token=token, token_file=token_file)
    raise ValueError(f"unknown runner {name!r}; runners: {', '.join(RUNNERS)}")


__all__ = ["RUNNERS", "BoardRunner", "Candidate", "CountRunner", "FullRunner", "Runner", "Timeout", "deadline",
           "make_runner", "timing_columns"]

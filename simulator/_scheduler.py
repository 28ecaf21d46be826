"""The run loop: three in-order modules synchronised by token queues (vta-spec §3.7).

Upstream starts each round at a wall-clock-random module; a race-free program gives the same
result in any order, so this loop is a deterministic round-robin load -> compute -> store, each
module running until its head instruction waits for a token. It stops when a whole round makes
no progress, which turns upstream's infinite spin on a deadlock into an error.

The token replay is the same with or without data: a count-only run replays it without
executing anything but the UOP loads (which upstream's skip-exec mode performs), so it finds the
same deadlocks and the same instructions running after FINISH.
"""
from __future__ import annotations

from . import _alu, _dma, _gemm
from ._decode import K_ALU, K_GEMM, K_LOAD, K_STORE, MODULE_NAMES, QUEUE_NAMES, Stream
from ._errors import SimulationError

EXECUTORS = {K_LOAD: _dma.load, K_STORE: _dma.store, K_GEMM: _gemm.gemm, K_ALU: _alu.alu}


def run(m, stream: Stream, count_only: bool, load_uops: bool = True) -> None:
    """Execute ``stream`` to FINISH on machine ``m`` (``load_uops=False``: a count-only run
    whose uop SRAM nobody will look at skips even the UOP loads)."""
    if count_only:
        steps = [None] * stream.n
        if load_uops:
            for index, step in stream.uop_loads():
                steps[index] = step
    else:
        steps = stream.steps()
    fifos, pops, pushes = stream.fifos, stream.pops, stream.pushes
    finish = stream.finish
    heads = [0, 0, 0]
    tokens = m.tokens
    finished = False
    after_finish = None   # first instruction that ran after FINISH
    while True:
        progress = False
        for module in (0, 1, 2):
            fifo, h = fifos[module], heads[module]
            end = len(fifo)
            while h < end:
                i = fifo[h]
                need = pops[i]
                if need:
                    # Both pops are checked before either is consumed (upstream DependencyProcess).
                    if tokens[need[0]] == 0 or (len(need) > 1 and tokens[need[1]] == 0):
                        break
                    for q in need:
                        tokens[q] -= 1
                s = steps[i]
                if s is not None:
                    try:
                        EXECUTORS[s.kind](m, s)
                    except SimulationError as exc:
                        raise SimulationError(f"{stream.describe(i)}: {exc}") from None
                if finished and after_finish is None:
                    after_finish = i
                if i == finish:
                    finished = True
                for q in pushes[i]:
                    tokens[q] += 1
                h += 1
            if h != heads[module]:
                heads[module] = h
                progress = True
        if not progress:
            break
    _check_outcome(m, stream, heads, finished, after_finish)


def _check_outcome(m, stream: Stream, heads, finished: bool, after_finish) -> None:
    """Raise for a run that deadlocked, ran something after FINISH or left instructions."""
    fifos = stream.fifos
    if not finished:
        raise SimulationError(_deadlock_message(m, stream, heads))
    if after_finish is not None:
        raise SimulationError(
            f"{stream.describe(after_finish)} ran after FINISH; upstream's fsim would never terminate "
            f"(its done flag is cleared by any later instruction) — guard it with dependency tokens")
    stuck = [fifos[k][heads[k]] for k in range(3) if heads[k] < len(fifos[k])]
    if stuck:
        # Upstream silently drops them when it clears its FIFOs; that hides a broken program.
        raise SimulationError("FINISH executed while instructions never ran: " + "; ".join(
            f"{MODULE_NAMES[stream.module[i]]} module at {stream.describe(i)}" for i in stuck)
            + f"; tokens {_token_text(m)}")


def _token_text(m) -> str:
    return ", ".join(f"{name}={n}" for name, n in zip(QUEUE_NAMES, m.tokens))


def _deadlock_message(m, stream: Stream, heads) -> str:
    parts = []
    for module in range(3):
        fifo = stream.fifos[module]
        if heads[module] < len(fifo):
            i = fifo[heads[module]]
            waits = ", ".join(f"{QUEUE_NAMES[q]}" for q in stream.pops[i] if m.tokens[q] == 0)
            parts.append(f"{MODULE_NAMES[module]} module stuck at {stream.describe(i)} waiting for "
                         f"{waits or 'nothing'}")
        else:
            parts.append(f"{MODULE_NAMES[module]} module done")
    return ("deadlock: no module can make progress before FINISH; " + "; ".join(parts)
            + f"; tokens {_token_text(m)}")

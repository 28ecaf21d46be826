"""The run loop: three in-order modules synchronised by token queues (vta-spec §3.7).

Upstream starts each round at a wall-clock-random module; a race-free program gives the same
result in any order, so this loop is a deterministic round-robin load -> compute -> store, each
module running until its head instruction waits for a token. It stops when a whole round makes
no progress, which turns upstream's infinite spin on a deadlock into an error.
"""
from __future__ import annotations

from . import _alu, _dma, _gemm
from ._decode import (COMPUTE_MODULE, K_ALU, K_FINISH, K_GEMM, K_LOAD, K_STORE, MODULE_NAMES,
                      QUEUE_NAMES, Step)
from ._errors import SimulationError

from compiler import isa

EXECUTORS = {K_LOAD: _dma.load, K_STORE: _dma.store, K_GEMM: _gemm.gemm, K_ALU: _alu.alu}


def run(m, steps: list[Step], counters: list[int], count_only: bool) -> None:
    """Execute ``steps`` to FINISH on machine ``m``, adding to ``counters``."""
    fifos = [[], [], []]
    for s in steps:
        fifos[s.module].append(s)
    heads = [0, 0, 0]
    tokens = m.tokens
    finish_at = None     # position in execution order of the FINISH
    executed = 0
    after_finish = None  # first instruction that ran after FINISH
    while True:
        progress = False
        for module in (0, 1, 2):
            fifo, h = fifos[module], heads[module]
            end = len(fifo)
            while h < end:
                s = fifo[h]
                pops = s.pops
                if pops:
                    # Both pops are checked before either is consumed (upstream DependencyProcess).
                    if any(tokens[q] == 0 for q in pops):
                        break
                    for q in pops:
                        tokens[q] -= 1
                if s.counter >= 0:
                    counters[s.counter] += s.amount
                kind = s.kind
                if kind == K_FINISH:
                    finish_at = executed
                elif kind != 0 and (not count_only or (kind == K_LOAD and s.memory_type == isa.MEM_UOP)):
                    try:
                        EXECUTORS[kind](m, s)
                    except SimulationError as exc:
                        raise SimulationError(f"{s.describe(m.env)}: {exc}") from None
                if finish_at is not None and kind != K_FINISH and after_finish is None:
                    after_finish = s
                for q in s.pushes:
                    tokens[q] += 1
                executed += 1
                h += 1
            if h != heads[module]:
                heads[module] = h
                progress = True
        if not progress:
            break
    if finish_at is None:
        raise SimulationError(_deadlock_message(m, fifos, heads))
    if after_finish is not None:
        raise SimulationError(
            f"{after_finish.describe(m.env)} ran after FINISH; upstream's fsim would never terminate "
            f"(its done flag is cleared by any later instruction) — guard it with dependency tokens")
    stuck = [fifos[k][heads[k]] for k in range(3) if heads[k] < len(fifos[k])]
    if stuck:
        # Upstream silently drops them when it clears its FIFOs; that hides a broken program.
        raise SimulationError("FINISH executed while instructions never ran: " + "; ".join(
            f"{MODULE_NAMES[s.module]} module at {s.describe(m.env)}" for s in stuck)
            + f"; tokens {_token_text(m)}")


def _token_text(m) -> str:
    return ", ".join(f"{name}={n}" for name, n in zip(QUEUE_NAMES, m.tokens))


def _deadlock_message(m, fifos, heads) -> str:
    parts = []
    for module in range(3):
        if heads[module] < len(fifos[module]):
            s = fifos[module][heads[module]]
            waits = ", ".join(f"{QUEUE_NAMES[q]}" for q in s.pops if m.tokens[q] == 0)
            parts.append(f"{MODULE_NAMES[module]} module stuck at {s.describe(m.env)} waiting for "
                         f"{waits or 'nothing'}")
        else:
            parts.append(f"{MODULE_NAMES[module]} module done")
    return ("deadlock: no module can make progress before FINISH; " + "; ".join(parts)
            + f"; tokens {_token_text(m)}")

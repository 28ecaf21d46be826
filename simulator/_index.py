"""The (iter_out x iter_in x uop) index space of GEMM/ALU instructions, as flat arrays."""
from __future__ import annotations

import numpy as np

from ._errors import SimulationError


def loop_indices(base: np.ndarray, iter_out: int, iter_in: int, f_out: int, f_in: int) -> np.ndarray:
    """``base[u] + y*f_out + x*f_in`` in upstream's (y, x, u) execution order."""
    y = np.arange(iter_out, dtype=np.int64)[:, None, None] * f_out
    x = np.arange(iter_in, dtype=np.int64)[None, :, None] * f_in
    return (base[None, None, :] + y + x).ravel()


def check_range(idx: np.ndarray, depth: int, what: str, iter_in: int, n_uops: int, uop_bgn: int) -> None:
    if idx.size and int(idx.max()) >= depth:
        n = int(np.argmax(idx >= depth))
        y, rest = divmod(n, iter_in * n_uops)
        x, u = divmod(rest, n_uops)
        raise SimulationError(f"{what} index {int(idx[n])} out of range (depth {depth}) at iteration "
                              f"y={y}, x={x}, uop {uop_bgn + u}")


def distinct(idx: np.ndarray, depth: int) -> bool:
    return idx.size <= 1 or int(np.bincount(idx, minlength=0).max()) <= 1


def group_sum(idx: np.ndarray, values: np.ndarray, ufunc=np.add):
    """(unique indices, ufunc-reduction of ``values`` per index) — for order-free updates."""
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
    return sorted_idx[starts], ufunc.reduceat(values[order], starts, axis=0)


def rows_or_slice(rows: np.ndarray):
    """A slice when ``rows`` are consecutive ascending (a view, no gather), else the rows."""
    if rows.size and int(rows[-1]) - int(rows[0]) == rows.size - 1 and bool(np.all(np.diff(rows) == 1)):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


class PlanCache:
    """Index plans of GEMM/ALU instructions, keyed by everything they depend on (geometry,
    instruction fields, uop contents). FIFO eviction under a budget of cached iterations, so the
    index arrays held stay around 100 MB at most; a ResNet-18 network needs a few MB."""

    def __init__(self, budget: int = 1 << 22):
        self.budget, self.held, self.plans = budget, 0, {}

    def get(self, key):
        found = self.plans.get(key)
        return None if found is None else found[0]

    def put(self, key, plan, iterations: int) -> None:
        if iterations > self.budget:
            return
        while self.held + iterations > self.budget:
            _, (_, size) = self._pop_oldest()
            self.held -= size
        self.plans[key] = (plan, iterations)
        self.held += iterations

    def _pop_oldest(self):
        key = next(iter(self.plans))
        return key, self.plans.pop(key)

    def clear(self) -> None:
        self.plans.clear()
        self.held = 0

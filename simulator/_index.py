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

"""``TimingModel._replay`` (the event-driven run of the four modules) as one compiled loop over
int64 arrays, for streams given as columns. Same algorithm, same order of events, so the same
cycles; ``tests/dse/test_fastcount.py`` checks it against the Python replay."""
from __future__ import annotations

import numpy as np

try:
    from numba import njit
except ImportError:   # pragma: no cover - the Python replay stays available
    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f


@njit(cache=True)
def replay(module, pop0, pop1, push0, push1, cycles, tokens, fc, depth):
    """(start per instruction, free[3], stalled[3], nxt[3], all dispatched, fetch stalled,
    pushed[4], popped[4]); pop*/push* hold a queue index or -1."""
    n = module.shape[0]
    qlen = np.zeros(3, dtype=np.int64)
    position = np.zeros(n, dtype=np.int64)
    for i in range(n):
        position[i] = qlen[module[i]]
        qlen[module[i]] += 1
    qoff = np.zeros(4, dtype=np.int64)
    for m in range(3):
        qoff[m + 1] = qoff[m] + qlen[m]
    qidx = np.zeros(n, dtype=np.int64)
    for i in range(n):
        qidx[qoff[module[i]] + position[i]] = i
    start = np.zeros(n, dtype=np.int64)          # by module queue slot
    cap = n + int(tokens.max()) + 1
    push_times = np.zeros((4, cap), dtype=np.int64)
    pushed = np.zeros(4, dtype=np.int64)
    for q in range(4):
        pushed[q] = tokens[q]
    popped = np.zeros(4, dtype=np.int64)
    free = np.zeros(3, dtype=np.int64)
    stalled = np.zeros(3, dtype=np.int64)
    nxt = np.zeros(3, dtype=np.int64)
    dispatch = np.full(n, -1, dtype=np.int64)
    fetch_stalled = 0
    fetch_next = 0
    fetch_clock = 0
    if qlen[0] <= depth and qlen[1] <= depth and qlen[2] <= depth:
        for i in range(n):
            dispatch[i] = fc * (i + 1)
        fetch_next = n
    progress = True
    while progress:
        progress = False
        while fetch_next < n:
            m = module[fetch_next]
            k = position[fetch_next]
            room = 0
            if k >= depth:
                if nxt[m] <= k - depth:
                    break
                room = start[qoff[m] + k - depth]
            t = fetch_clock + fc
            if room > t:
                fetch_stalled += room - t
                t = room
            dispatch[fetch_next] = t
            fetch_clock = t
            fetch_next += 1
            progress = True
        for m in range(3):
            h = nxt[m]
            end = qlen[m]
            if h == end:
                continue
            f = free[m]
            st = stalled[m]
            while h < end:
                i = qidx[qoff[m] + h]
                ready = dispatch[i]
                if ready < 0:
                    break
                p0 = pop0[i]
                p1 = pop1[i]
                token_time = 0
                if p0 >= 0:
                    if pushed[p0] <= popped[p0] or (p1 >= 0 and pushed[p1] <= popped[p1]):
                        break
                    t = push_times[p0, popped[p0]]
                    popped[p0] += 1
                    if t > token_time:
                        token_time = t
                    if p1 >= 0:
                        t = push_times[p1, popped[p1]]
                        popped[p1] += 1
                        if t > token_time:
                            token_time = t
                if f > ready:
                    ready = f
                begin = token_time if token_time > ready else ready
                st += begin - ready
                start[qoff[m] + h] = begin
                f = begin + cycles[i]
                q = push0[i]
                if q >= 0:
                    push_times[q, pushed[q]] = f
                    pushed[q] += 1
                    q = push1[i]
                    if q >= 0:
                        push_times[q, pushed[q]] = f
                        pushed[q] += 1
                h += 1
            if h != nxt[m]:
                nxt[m] = h
                free[m] = f
                stalled[m] = st
                progress = True
    all_dispatched = True
    for i in range(n):
        if dispatch[i] < 0:
            all_dispatched = False
    by_insn = np.zeros(n, dtype=np.int64)
    for i in range(n):
        by_insn[i] = start[qoff[module[i]] + position[i]]
    return by_insn, free, stalled, nxt, qlen, all_dispatched, fetch_stalled, pushed, popped

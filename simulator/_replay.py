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


@njit(cache=True)
def stream_costs(rows, elem, pad, ii, split, counter, unit, is_load, is_store, pop_tab, push_tab,
                 dma_latency, bytes_per_cycle, pipeline_fill, alu_ii_imm, out_elem_bytes):
    """One pass over a row-per-instruction stream (columns in ``_decode.COLUMNS`` order): what
    ``TimingModel._costs``, ``op_module``, ``flag_codes`` and the decoder's counters compute,
    fused. Returns per instruction (cycles, module, pop0, pop1, push0, push1) and the sums
    (busy[3], moved[3], compute split[5], GEMM uop-iterations, counters[7], finish index)."""
    n = rows.shape[0]
    cycles = np.empty(n, dtype=np.int64)
    module = np.empty(n, dtype=np.int64)
    pop0 = np.empty(n, dtype=np.int64)
    pop1 = np.empty(n, dtype=np.int64)
    push0 = np.empty(n, dtype=np.int64)
    push1 = np.empty(n, dtype=np.int64)
    busy = np.zeros(3, dtype=np.int64)
    moved = np.zeros(3, dtype=np.int64)
    split_cycles = np.zeros(5, dtype=np.int64)
    counters = np.zeros(7, dtype=np.int64)
    gemm_iters = 0
    last_finish = -1
    for i in range(n):
        op = rows[i, 0]
        mtype = rows[i, 5]
        key = op * 8 + mtype if (0 <= op < 8 and 0 <= mtype < 8) else 3 * 8
        x = rows[i, 9]
        y = rows[i, 8]
        active = (op == 0 or op == 1) and x != 0
        if op == 1:
            m = 2
        elif op == 0 and (mtype == 2 or mtype == 1):
            m = 0
        else:
            m = 1
        module[i] = m
        code = m * 16 + (8 if rows[i, 1] != 0 else 0) + (4 if rows[i, 2] != 0 else 0) + \
            (2 if rows[i, 3] != 0 else 0) + (1 if rows[i, 4] != 0 else 0)
        pop0[i] = pop_tab[code, 0]
        pop1[i] = pop_tab[code, 1]
        push0[i] = push_tab[code, 0]
        push1[i] = push_tab[code, 1]
        c = 1
        nbytes = 0
        if active:
            row_bytes = x * elem[key]
            xp = rows[i, 13] + rows[i, 14]
            pad_elems = (rows[i, 11] + rows[i, 12]) * (rows[i, 13] + x + rows[i, 14]) + y * xp
            beats = np.int64(np.ceil(row_bytes / bytes_per_cycle))
            c = y * (dma_latency + beats) + pad_elems * pad[key]
            nbytes = y * row_bytes
            if is_load[key]:
                counters[counter[key]] += x * y * unit[key]
            elif is_store[key]:
                counters[4] += x * y * out_elem_bytes
        if op == 2 or op == 4:
            iterations = rows[i, 18] * rows[i, 19] * (rows[i, 17] - rows[i, 16])
            step = alu_ii_imm if (op == 4 and rows[i, 27] != 0) else ii[key]
            c = pipeline_fill + iterations * step
            if op == 2:
                if rows[i, 15] == 0:
                    gemm_iters += iterations
                    counters[5] += iterations
            else:
                counters[6] += iterations
        if op == 3:
            last_finish = i
        cycles[i] = c
        busy[m] += c
        moved[m] += nbytes
        if m == 1:
            split_cycles[split[key]] += c
    return cycles, module, pop0, pop1, push0, push1, busy, moved, split_cycles, gemm_iters, counters, last_finish


@njit(cache=True)
def count_in_order(rows, elem, pad, ii, split, counter, unit, is_load, is_store, pop_tab, push_tab,
                   dma_latency, bytes_per_cycle, pipeline_fill, alu_ii_imm, out_elem_bytes, tokens, fc, depth):
    """``stream_costs`` and the replay in one pass over program order. Valid (ok) when every
    token an instruction pops was pushed by an earlier instruction or was there initially: each
    queue has one producer and one consumer module, both in order, so the k-th pop meets the
    k-th push, and the command-queue slot an instruction waits for (the one ``depth`` places
    ahead in its module) frees when an earlier instruction starts. Then every start time is the
    event-driven run's. Returns (ok, busy[3], moved[3], split[5], GEMM uop-iterations,
    counters[7], free[3], stalled[3], queue lengths[3], fetch stalled, end of the last FINISH)."""
    n = rows.shape[0]
    busy = np.zeros(3, dtype=np.int64)
    moved = np.zeros(3, dtype=np.int64)
    split_cycles = np.zeros(5, dtype=np.int64)
    counters = np.zeros(7, dtype=np.int64)
    free = np.zeros(3, dtype=np.int64)
    stalled = np.zeros(3, dtype=np.int64)
    qlen = np.zeros(3, dtype=np.int64)
    ring_size = max(1, min(depth, n))
    ring = np.zeros((3, ring_size), dtype=np.int64)
    cap = n + int(tokens.max()) + 1
    push_times = np.zeros((4, cap), dtype=np.int64)
    pushed = np.zeros(4, dtype=np.int64)
    for q in range(4):
        pushed[q] = tokens[q]
    popped = np.zeros(4, dtype=np.int64)
    gemm_iters = 0
    fetch_clock = 0
    fetch_stalled = 0
    finish_end = -1
    for i in range(n):
        op = rows[i, 0]
        mtype = rows[i, 5]
        key = op * 8 + mtype if (0 <= op < 8 and 0 <= mtype < 8) else 3 * 8
        x = rows[i, 9]
        y = rows[i, 8]
        if op == 1:
            m = 2
        elif op == 0 and (mtype == 2 or mtype == 1):
            m = 0
        else:
            m = 1
        c = 1
        if (op == 0 or op == 1) and x != 0:
            row_bytes = x * elem[key]
            xp = rows[i, 13] + rows[i, 14]
            pad_elems = (rows[i, 11] + rows[i, 12]) * (rows[i, 13] + x + rows[i, 14]) + y * xp
            beats = np.int64(np.ceil(row_bytes / bytes_per_cycle))
            c = y * (dma_latency + beats) + pad_elems * pad[key]
            moved[m] += y * row_bytes
            if is_load[key]:
                counters[counter[key]] += x * y * unit[key]
            elif is_store[key]:
                counters[4] += x * y * out_elem_bytes
        elif op == 2 or op == 4:
            iterations = rows[i, 18] * rows[i, 19] * (rows[i, 17] - rows[i, 16])
            step = alu_ii_imm if (op == 4 and rows[i, 27] != 0) else ii[key]
            c = pipeline_fill + iterations * step
            if op == 2:
                if rows[i, 15] == 0:
                    gemm_iters += iterations
                    counters[5] += iterations
            else:
                counters[6] += iterations
        busy[m] += c
        if m == 1:
            split_cycles[split[key]] += c
        # fetch: dispatched fc cycles after the previous one, once its command queue has room
        k = qlen[m]
        qlen[m] = k + 1
        t = fetch_clock + fc
        slot = k % ring_size
        if k >= depth:
            room = ring[m, slot]
            if room > t:
                fetch_stalled += room - t
                t = room
        fetch_clock = t
        ready = free[m] if free[m] > t else t
        code = m * 16 + (8 if rows[i, 1] != 0 else 0) + (4 if rows[i, 2] != 0 else 0) + \
            (2 if rows[i, 3] != 0 else 0) + (1 if rows[i, 4] != 0 else 0)
        token_time = 0
        p0 = pop_tab[code, 0]
        if p0 >= 0:
            p1 = pop_tab[code, 1]
            if pushed[p0] <= popped[p0] or (p1 >= 0 and pushed[p1] <= popped[p1]):
                return (False, busy, moved, split_cycles, gemm_iters, counters, free, stalled, qlen,
                        fetch_stalled, finish_end)
            token_time = push_times[p0, popped[p0]]
            popped[p0] += 1
            if p1 >= 0:
                tt = push_times[p1, popped[p1]]
                popped[p1] += 1
                if tt > token_time:
                    token_time = tt
        begin = token_time if token_time > ready else ready
        stalled[m] += begin - ready
        ring[m, slot] = begin
        end = begin + c
        free[m] = end
        q = push_tab[code, 0]
        if q >= 0:
            push_times[q, pushed[q]] = end
            pushed[q] += 1
            q = push_tab[code, 1]
            if q >= 0:
                push_times[q, pushed[q]] = end
                pushed[q] += 1
        if op == 3:
            finish_end = end
    return (True, busy, moved, split_cycles, gemm_iters, counters, free, stalled, qlen, fetch_stalled,
            finish_end)

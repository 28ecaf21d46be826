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


# snapshot layout (one row per repeat hint)
_S_VALID, _S_CLOCK, _S_FSTALL, _S_ITERS = 0, 1, 2, 3
_S_FREE, _S_STALL, _S_BUSY, _S_MOVED, _S_QLEN = 4, 7, 10, 13, 16
_S_SPLIT, _S_COUNT, _S_PUSHED, _S_POPPED = 19, 24, 31, 35
_S_BOUND = 39
_S_WIDTH = 40
_PENDING = 16


@njit(cache=True, inline="always")
def _snapshot(sn, pend, fetch_clock, fetch_stalled, gemm_iters, free, stalled, busy, moved, qlen, split_cycles,
              counters, pushed, popped, push_times, fetch_bound):
    sn[_S_VALID] = 1
    sn[_S_BOUND] = fetch_bound
    sn[_S_CLOCK] = fetch_clock
    sn[_S_FSTALL] = fetch_stalled
    sn[_S_ITERS] = gemm_iters
    for m in range(3):
        sn[_S_FREE + m] = free[m]
        sn[_S_STALL + m] = stalled[m]
        sn[_S_BUSY + m] = busy[m]
        sn[_S_MOVED + m] = moved[m]
        sn[_S_QLEN + m] = qlen[m]
    for k in range(5):
        sn[_S_SPLIT + k] = split_cycles[k]
    for k in range(7):
        sn[_S_COUNT + k] = counters[k]
    for q in range(4):
        sn[_S_PUSHED + q] = pushed[q]
        sn[_S_POPPED + q] = popped[q]
        if pushed[q] - popped[q] > _PENDING:
            sn[_S_VALID] = 0
        else:
            for j in range(pushed[q] - popped[q]):
                pend[q, j] = push_times[q, popped[q] + j]


@njit(cache=True, inline="always")
def _periodic(sn, pend, reps, depth, fetch_clock, free, qlen, pushed, popped, push_times, start_pos, fetch_bound):
    """The module-time shift D when the rest of the run cannot tell the state now from the
    snapshot's shifted by D, else 0. Everything the repetitions read must shift by D: the free
    times of the modules they use (an idle module's is not read), the tokens in flight, and
    either the fetch clock with the start times command-queue slots wait for (a throttled
    fetch), or nothing of the fetch at all: it ran ahead of every instruction in the period,
    gains at most D per period and no command queue can fill in the repetitions."""
    if sn[_S_VALID] == 0:
        return 0
    shift = 0
    for m in range(3):
        if qlen[m] > sn[_S_QLEN + m]:
            d = free[m] - sn[_S_FREE + m]
            if shift == 0:
                shift = d
            elif d != shift:
                return 0
    if shift <= 0:
        return 0
    for q in range(4):
        if pushed[q] - popped[q] != sn[_S_PUSHED + q] - sn[_S_POPPED + q]:
            return 0
        for j in range(pushed[q] - popped[q]):
            if push_times[q, popped[q] + j] != pend[q, j] + shift:
                return 0
    fetch_shift = fetch_clock - sn[_S_CLOCK]
    if fetch_shift == shift:
        for m in range(3):
            per = qlen[m] - sn[_S_QLEN + m]
            if per > 0 and qlen[m] + reps * per > depth:
                for j in range(min(depth, qlen[m])):
                    b = sn[_S_QLEN + m] - 1 - j
                    if b < 0 or start_pos[m, qlen[m] - 1 - j] != start_pos[m, b] + shift:
                        return 0
        return shift
    if fetch_shift > shift or fetch_bound != sn[_S_BOUND]:
        return 0
    for m in range(3):
        if qlen[m] + reps * (qlen[m] - sn[_S_QLEN + m]) > depth:
            return 0
    return shift


@njit(cache=True, inline="always")
def _extend(sn, shift, reps, free, stalled, busy, moved, qlen, split_cycles, counters, pushed, popped, push_times,
            start_pos):
    """Add ``reps`` more periods like the one since the snapshot, each ``shift`` cycles later."""
    for k in range(5):
        split_cycles[k] += reps * (split_cycles[k] - sn[_S_SPLIT + k])
    for k in range(7):
        counters[k] += reps * (counters[k] - sn[_S_COUNT + k])
    for m in range(3):
        per = qlen[m] - sn[_S_QLEN + m]
        busy[m] += reps * (busy[m] - sn[_S_BUSY + m])
        moved[m] += reps * (moved[m] - sn[_S_MOVED + m])
        stalled[m] += reps * (stalled[m] - sn[_S_STALL + m])
        if per == 0:
            continue
        for k in range(qlen[m], qlen[m] + reps * per):
            r = (k - qlen[m]) // per + 1
            start_pos[m, k] = start_pos[m, k - r * per] + r * shift
        qlen[m] += reps * per
        free[m] += reps * shift
    for q in range(4):
        npend = pushed[q] - popped[q]
        adv = reps * (pushed[q] - sn[_S_PUSHED + q])
        for j in range(npend - 1, -1, -1):
            push_times[q, popped[q] + adv + j] = push_times[q, popped[q] + j] + reps * shift
        pushed[q] += adv
        popped[q] += adv


@njit(cache=True)
def count_in_order(rows, elem, pad, ii, split, counter, unit, is_load, is_store, pop_tab, push_tab,
                   dma_latency, bytes_per_cycle, pipeline_fill, alu_ii_imm, out_elem_bytes, tokens, fc, depth,
                   repeats):
    """``stream_costs`` and the replay in one pass over program order. Valid (ok) when every
    token an instruction pops was pushed by an earlier instruction or was there initially: each
    queue has one producer and one consumer module, both in order, so the k-th pop meets the
    k-th push, and the command-queue slot an instruction waits for (the one ``depth`` places
    ahead in its module) frees when an earlier instruction starts. Then every start time is the
    event-driven run's.

    ``repeats`` rows (row, period, count) say rows [row, row + period * count) repeat the
    period before ``row``. The pass is shift-invariant (times combine by max and +), so when
    the state after that period (module free times, fetch clock, the tokens in flight and the
    last ``depth`` start times of each module) equals the state before it shifted by D cycles,
    every repetition behaves the same, D later: all but the last are added at once (the last is
    run, its final row may differ). A hint whose states do not match is ignored.

    Returns (ok, busy[3], moved[3], split[5], GEMM uop-iterations, counters[7], free[3],
    stalled[3], queue lengths[3], fetch stalled, end of the last FINISH, rows added at once)."""
    n = rows.shape[0]
    busy = np.zeros(3, dtype=np.int64)
    moved = np.zeros(3, dtype=np.int64)
    split_cycles = np.zeros(5, dtype=np.int64)
    counters = np.zeros(7, dtype=np.int64)
    free = np.zeros(3, dtype=np.int64)
    stalled = np.zeros(3, dtype=np.int64)
    qlen = np.zeros(3, dtype=np.int64)
    start_pos = np.zeros((3, n + 1), dtype=np.int64)
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
    # repeat hints: snapshot at row - period, extrapolate at row
    nr = repeats.shape[0]
    snaps = np.zeros((max(nr, 1), _S_WIDTH), dtype=np.int64)
    pend = np.zeros((max(nr, 1), 4, _PENDING), dtype=np.int64)
    first = np.empty(max(nr, 1), dtype=np.int64)
    for e in range(nr):
        first[e] = repeats[e, 0] - repeats[e, 1]
    order = np.argsort(first[:nr], kind="mergesort")
    next_snap = 0
    next_rep = 0
    fetch_bound = 0   # instructions whose dispatch the fetch delayed or queue room throttled
    skipped = 0
    retry = -1        # hint whose repetitions did not (yet) reach a periodic state
    retry_row = 0
    retry_left = 0
    i = 0
    while i < n:
        while next_snap < nr and first[order[next_snap]] <= i:
            e = order[next_snap]
            next_snap += 1
            if first[e] == i:
                _snapshot(snaps[e], pend[e], fetch_clock, fetch_stalled, gemm_iters, free, stalled, busy, moved,
                          qlen, split_cycles, counters, pushed, popped, push_times, fetch_bound)
        check = -1
        left = 0
        while next_rep < nr and repeats[next_rep, 0] <= i:
            e = next_rep
            next_rep += 1
            if repeats[e, 0] == i and snaps[e, _S_VALID] != 0 and repeats[e, 2] >= 2:
                check = e
                left = repeats[e, 2]
        if retry >= 0 and i == retry_row:
            check = retry
            left = retry_left
            retry = -1
        if check >= 0:
            # ``left`` repetitions of the period follow row i; add all but the last at once
            # when the state has become periodic, else look again one period later
            period = repeats[check, 1]
            reps = left - 1
            shift = _periodic(snaps[check], pend[check], reps, depth, fetch_clock, free, qlen, pushed, popped,
                              push_times, start_pos, fetch_bound)
            if shift > 0:
                fetch_shift = fetch_clock - snaps[check, _S_CLOCK]
                fetch_stalled += reps * (fetch_stalled - snaps[check, _S_FSTALL])
                gemm_iters += reps * (gemm_iters - snaps[check, _S_ITERS])
                _extend(snaps[check], shift, reps, free, stalled, busy, moved, qlen, split_cycles, counters,
                        pushed, popped, push_times, start_pos)
                fetch_clock += reps * fetch_shift
                skipped += reps * period
                i += reps * period
            elif reps >= 2:
                _snapshot(snaps[check], pend[check], fetch_clock, fetch_stalled, gemm_iters, free, stalled, busy,
                          moved, qlen, split_cycles, counters, pushed, popped, push_times, fetch_bound)
                retry = check
                retry_row = i + period
                retry_left = left - 1
        if i >= n:
            break
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
        if k >= depth:
            room = start_pos[m, k - depth]
            if room > t:
                fetch_stalled += room - t
                t = room
                fetch_bound += 1
        fetch_clock = t
        if t > free[m]:
            fetch_bound += 1
        ready = free[m] if free[m] > t else t
        code = m * 16 + (8 if rows[i, 1] != 0 else 0) + (4 if rows[i, 2] != 0 else 0) + \
            (2 if rows[i, 3] != 0 else 0) + (1 if rows[i, 4] != 0 else 0)
        token_time = 0
        p0 = pop_tab[code, 0]
        if p0 >= 0:
            p1 = pop_tab[code, 1]
            if pushed[p0] <= popped[p0] or (p1 >= 0 and pushed[p1] <= popped[p1]):
                return (False, busy, moved, split_cycles, gemm_iters, counters, free, stalled, qlen,
                        fetch_stalled, finish_end, skipped)
            token_time = push_times[p0, popped[p0]]
            popped[p0] += 1
            if p1 >= 0:
                tt = push_times[p1, popped[p1]]
                popped[p1] += 1
                if tt > token_time:
                    token_time = tt
        begin = token_time if token_time > ready else ready
        stalled[m] += begin - ready
        start_pos[m, k] = begin
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
        i += 1
    return (True, busy, moved, split_cycles, gemm_iters, counters, free, stalled, qlen, fetch_stalled,
            finish_end, skipped)

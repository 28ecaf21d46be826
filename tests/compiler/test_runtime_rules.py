"""Unit tests of every runtime rule: allocator, dependency tokens, kernel recording and caching,
uop-SRAM residency and wrap, instruction field mapping, auto-sync (vta-spec §3.2, §5)."""
from __future__ import annotations

import numpy as np
import pytest

import hwconfigs
from compiler import isa
from compiler.runtime import PAGE_BYTES, CommandQueue, DeviceMemory, RuntimeCheckError

INP, WGT, UOP, OUT = isa.MEM_INP, isa.MEM_WGT, isa.MEM_UOP, isa.MEM_OUT


@pytest.fixture(scope="module")
def env():
    return hwconfigs.get_env()


@pytest.fixture
def cq(env):
    mem = DeviceMemory()
    queue = CommandQueue(env, mem)
    queue.buf = mem.alloc(1 << 16)
    return queue


def flags(insn) -> set:
    names = {"pp": insn.pop_prev, "pn": insn.pop_next, "Pp": insn.push_prev, "Pn": insn.push_next}
    return {k for k, v in names.items() if v}


def kind(insn) -> str:
    if isinstance(insn, isa.MemInsn):
        op = isa.OPCODE_NAMES[insn.opcode]
        return f"{op} {'NOP' if insn.x_size == 0 else isa.MEM_NAMES[insn.memory_type]}"
    return type(insn).__name__


def summary(queue):
    return [(kind(i), flags(i)) for i in queue.pending_instructions]


def one_uop(dst=0, src=0, wgt=0, reset=0):
    def finit(rec):
        rec.uop_push(0, reset, dst, src, wgt)
    return finit


def n_uops(n, mode=0):
    def finit(rec):
        for j in range(n):
            rec.uop_push(mode, 0, j, j, 0, isa.ALU_ADD, 1, 1)
    return finit


def load_inp(queue):
    queue.load_buffer_2d(queue.buf, 0, 1, 1, 1, 0, 0, 0, 0, 0, INP)


# ---- DeviceMemory (spec §3.2) ---------------------------------------------------------------

def test_allocation_starts_at_0x1000_and_rounds_to_pages():
    mem = DeviceMemory()
    assert mem.alloc(1) == 0x1000
    assert mem.alloc(4096) == 0x2000
    assert mem.alloc(4097) == 0x3000
    assert mem.alloc(10) == 0x5000


def test_freed_block_is_reused_whole_by_the_best_fitting_request():
    mem = DeviceMemory()
    two, one, three = mem.alloc(2 * PAGE_BYTES), mem.alloc(PAGE_BYTES), mem.alloc(3 * PAGE_BYTES)
    mem.free(three)
    mem.free(two)
    assert mem.alloc(100) == two              # smallest block that fits
    assert mem.alloc(3 * PAGE_BYTES) == three
    assert mem.alloc(PAGE_BYTES) == three + 3 * PAGE_BYTES   # nothing free fits: new pages
    assert one == 0x3000


def test_equal_sized_free_blocks_are_reused_in_free_order():
    mem = DeviceMemory()
    a, b = mem.alloc(1), mem.alloc(1)
    mem.free(b)
    mem.free(a)
    assert mem.alloc(1) == b


@pytest.mark.parametrize("action", ["zero", "double free", "bad address"])
def test_allocator_errors(action):
    mem = DeviceMemory()
    a = mem.alloc(1)
    with pytest.raises(RuntimeCheckError):
        if action == "zero":
            mem.alloc(0)
        elif action == "double free":
            mem.free(a)
            mem.free(a)
        else:
            mem.free(a + 16)


def test_staging_buffers_are_reserved_at_the_first_runtime_call(env):
    mem = DeviceMemory()
    a = mem.alloc(256)
    queue = CommandQueue(env, mem)
    late = mem.alloc(256)          # still before the first call: staging goes after it
    queue.dep_push(2, 1)
    assert (a, late) == (0x1000, 0x2000)
    assert queue.uop_staging_phys == 0x3000
    assert queue.insn_staging_phys == 0x3000 + (1 << 25)
    assert mem.alloc(1) == 0x3000 + (2 << 25)


def test_dma_requires_a_buffer_start(cq):
    with pytest.raises(RuntimeCheckError, match="not the start of a live device allocation"):
        cq.load_buffer_2d(cq.buf + 16, 0, 1, 1, 1, 0, 0, 0, 0, 0, INP)


def test_dram_base_is_in_elements_of_the_memory_type(cq, env):
    cq.load_buffer_2d(cq.buf, 3, 1, 1, 1, 0, 0, 0, 0, 0, WGT)
    cq.store_buffer_2d(0, OUT, cq.buf, 5, 1, 1, 1)
    load, store = cq.pending_instructions
    assert load.dram_base == cq.buf // env.WGT_ELEM_BYTES + 3
    assert store.dram_base == cq.buf // env.OUT_ELEM_BYTES + 5
    with pytest.raises(RuntimeCheckError, match="memory type 7"):
        cq.load_buffer_2d(cq.buf, 0, 1, 1, 1, 0, 0, 0, 0, 0, 7)


def test_fields_are_truncated_to_their_widths(cq):
    # x_size 65536 wraps to 0, as the C bit-field does: the load becomes a NOP of no stage.
    cq.load_buffer_2d(cq.buf, 0, 1 << 16, 1, 1, 0, 0, 0, 0, 0, INP)
    assert cq.pending_instructions[0].x_size == 0
    cq.dep_push(1, 2)
    assert summary(cq) == [("LOAD NOP", set()), ("LOAD NOP", {"Pn"})]


# ---- dependency tokens (spec §5.3) -------------------------------------------------------------

def test_pop_attaches_to_the_next_instruction_of_its_stage(cq):
    cq.dep_pop(2, 1)
    cq.store_buffer_2d(0, OUT, cq.buf, 0, 1, 1, 1)   # another stage: does not take the pop
    load_inp(cq)
    assert summary(cq) == [("STORE OUT", set()), ("LOAD INP", {"pn"})]


def test_pops_from_both_sides_share_one_instruction(cq):
    cq.dep_pop(3, 2)
    cq.dep_pop(1, 2)
    cq.push_gemm_op("g", one_uop())
    assert summary(cq) == [("LOAD UOP", {"pp", "pn"}), ("GemmInsn", set())]


def test_pop_goes_to_the_gemm_when_the_kernel_is_resident(cq):
    cq.push_gemm_op("g", one_uop())
    cq.dep_pop(1, 2)
    cq.push_gemm_op("g", one_uop())
    assert summary(cq)[2] == ("GemmInsn", {"pp"})


def test_second_pop_of_the_same_kind_commits_the_first_as_a_nop(cq):
    cq.dep_pop(1, 2)
    cq.dep_pop(1, 2)
    assert summary(cq) == [("LOAD NOP", {"pp"})]
    assert cq.pending_instructions[0].memory_type == UOP    # compute-stage NOP
    cq.push_gemm_op("g", one_uop())
    assert summary(cq)[1] == ("LOAD UOP", {"pp"})


def test_push_lands_on_the_last_instruction_of_the_pushing_stage(cq):
    load_inp(cq)
    cq.dep_push(1, 2)
    assert summary(cq) == [("LOAD INP", {"Pn"})]


def test_push_needs_a_nop_when_the_last_instruction_is_another_stage(cq):
    load_inp(cq)
    cq.dep_push(2, 1)
    cq.dep_push(3, 2)
    assert summary(cq) == [("LOAD INP", set()), ("LOAD NOP", {"Pp"}), ("STORE NOP", {"Pp"})]
    compute_nop, store_nop = cq.pending_instructions[1:]
    assert compute_nop.memory_type == UOP and store_nop.memory_type == 0


def test_push_needs_a_nop_when_the_flag_is_already_set(cq):
    load_inp(cq)
    cq.dep_push(1, 2)
    cq.dep_push(1, 2)
    assert summary(cq) == [("LOAD INP", {"Pn"}), ("LOAD NOP", {"Pn"})]


def test_compute_push_both_directions_on_one_instruction(cq):
    cq.push_gemm_op("g", one_uop())
    cq.dep_push(2, 1)
    cq.dep_push(2, 3)
    assert summary(cq)[-1] == ("GemmInsn", {"Pp", "Pn"})


def test_push_commits_pending_pops_and_a_load_nop_has_no_stage(cq):
    cq.dep_pop(2, 1)
    cq.dep_push(1, 2)
    assert summary(cq) == [("LOAD NOP", {"pn"}), ("LOAD NOP", {"Pn"})]


def test_store_nop_still_counts_as_store_stage(cq):
    cq.dep_pop(2, 3)
    cq.dep_push(3, 2)
    assert summary(cq) == [("STORE NOP", {"pp", "Pp"})]


@pytest.mark.parametrize("route", [(1, 3), (3, 1), (2, 2), (0, 2), (2, 4)])
@pytest.mark.parametrize("call", ["dep_push", "dep_pop"])
def test_invalid_token_routes_are_rejected(cq, route, call):
    with pytest.raises(RuntimeCheckError):
        getattr(cq, call)(*route)


def test_synchronize_of_an_empty_stream(cq):
    program = cq.synchronize()
    assert [(kind(i), flags(i)) for i in program] == [
        ("STORE NOP", {"Pp"}), ("LOAD NOP", {"Pn"}), ("LOAD NOP", {"pp", "pn"}), ("FinishInsn", set())]
    assert program.instructions[2].memory_type == UOP and program.instructions[1].memory_type == INP


def test_synchronize_commits_a_pending_load_pop_before_its_final_push(cq):
    cq.dep_pop(2, 1)
    program = cq.synchronize()
    assert [(kind(i), flags(i)) for i in program] == [
        ("STORE NOP", {"Pp"}), ("LOAD NOP", {"pn"}), ("LOAD NOP", {"Pn"}), ("LOAD NOP", {"pp", "pn"}),
        ("FinishInsn", set())]


def test_pending_compute_pop_survives_synchronize(cq):
    cq.push_gemm_op("g", one_uop())
    cq.synchronize()
    cq.dep_pop(3, 2)
    assert cq.pending_instructions == []
    cq.push_gemm_op("g", one_uop())
    assert summary(cq)[0] == ("LOAD UOP", {"pn"})


def test_queue_keeps_every_program(cq):
    first = cq.synchronize()
    second = cq.synchronize()
    assert cq.programs == [first, second]


# ---- kernels: recording rules (spec §5.4) ----------------------------------------------------

def test_kernel_is_recorded_once_and_reloaded_after_each_synchronize(cq):
    calls = []

    def finit(rec):
        calls.append(1)
        rec.uop_push(0, 0, 0, 0, 0)

    cq.push_gemm_op("g", finit)
    cq.push_gemm_op("g", finit)
    first = cq.synchronize()
    cq.push_gemm_op("g", finit)
    second = cq.synchronize()
    assert len(calls) == 1
    assert [kind(i) for i in first][:3] == ["LOAD UOP", "GemmInsn", "GemmInsn"]
    assert [kind(i) for i in second][:2] == ["LOAD UOP", "GemmInsn"]


def test_signature_keys(cq):
    recorded = []

    def finit(tag):
        def record(rec):
            recorded.append((tag, rec.signature))
            rec.uop_push(0, 0, 0, 0, 0)
        return record

    cq.push_gemm_op("g", finit("none"))
    cq.push_gemm_op("g", finit("0"), signature=0)
    cq.push_gemm_op("g", finit("98"), signature=98)
    cq.push_gemm_op("g", finit("-1"), signature=-1)     # key 0: collides with no signature
    cq.push_gemm_op("h", finit("h"))                      # another site: its own map
    assert recorded == [("none", None), ("0", 0), ("98", 98), ("h", None)]
    for bad in (99, -2, 1000):
        with pytest.raises(RuntimeCheckError, match="key"):
            cq.push_gemm_op("g", finit("bad"), signature=bad)
    with pytest.raises(RuntimeCheckError, match="signature must be None or one int"):
        cq.push_gemm_op("g", finit("bad"), signature=(1, 2))


@pytest.mark.parametrize("body, match", [
    (lambda r: (r.uop_push(0, 0, 0, 0, 0), r.uop_push(1, 0, 1, 0, 0)), "mode"),
    (lambda r: (r.uop_push(0, 1, 0, 0, 0), r.uop_push(0, 0, 1, 0, 0)), "reset"),
    (lambda r: (r.loop_begin(1, 0, 0, 0), r.loop_begin(1, 0, 0, 0), r.loop_begin(1, 0, 0, 0)), "at most 2 loops"),
    (lambda r: (r.uop_push(0, 0, 0, 0, 0), r.loop_begin(2, 1, 0, 0)), "before the first uop"),
    (lambda r: (r.uop_push(0, 0, 5, 0, 0), r.uop_push(0, 0, 5, 1, 0)), "VerifyDep"),
    (lambda r: (r.uop_push(0, 0, 5, 0, 0), r.uop_push(0, 0, 6, 0, 0), r.uop_push(0, 0, 5, 0, 0)), "VerifyDep"),
    (lambda r: None, "recorded no uops"),
])
def test_gemm_recording_errors(cq, body, match):
    with pytest.raises(RuntimeCheckError, match=match):
        cq.push_gemm_op("g", body)


@pytest.mark.parametrize("second, match", [
    ((isa.ALU_MAX, 1, 8), "opcode"), ((isa.ALU_SHR, 0, 8), "use_imm"), ((isa.ALU_SHR, 1, 9), "imm"),
])
def test_alu_kernel_is_one_operation(cq, second, match):
    def finit(rec):
        rec.uop_push(1, 0, 0, 0, 0, isa.ALU_SHR, 1, 8)
        rec.uop_push(1, 0, 1, 1, 0, *second)
    with pytest.raises(RuntimeCheckError, match=match):
        cq.push_alu_op("a", finit)


def test_dst_hazard_allows_distance_three(cq):
    def finit(rec):
        for dst in (5, 6, 7, 5):
            rec.uop_push(0, 0, dst, 0, 0)
    cq.push_gemm_op("g", finit)
    assert len(cq.pending_instructions) == 2


def test_failed_recording_is_not_cached(cq):
    attempts = []

    def finit(rec):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        rec.uop_push(0, 0, 0, 0, 0)

    with pytest.raises(RuntimeError):
        cq.push_gemm_op("g", finit)
    cq.push_gemm_op("g", finit)
    assert len(attempts) == 2


def test_recorder_is_dead_after_finit(cq):
    saved = []

    def finit(rec):
        saved.append(rec)
        rec.uop_push(0, 0, 0, 0, 0)

    cq.push_gemm_op("g", finit)
    with pytest.raises(RuntimeCheckError, match="outside a kernel's finit"):
        saved[0].uop_push(0, 0, 1, 0, 0)


def test_kernel_mode_must_match_the_push(cq):
    with pytest.raises(RuntimeCheckError, match="recorded in ALU mode but pushed as a GEMM"):
        cq.push_gemm_op("a", n_uops(1, mode=1))
    with pytest.raises(RuntimeCheckError, match="recorded in GEMM mode but pushed as a ALU"):
        cq.push_alu_op("g", one_uop())


def test_imm_is_truncated_to_int16(cq, env):
    def finit(rec):
        rec.loop_begin(4, 1, 1, 0)
        rec.uop_push(1, 0, 0, 0, 0, isa.ALU_ADD, 1, 40000)
    cq.push_alu_op("a", finit)
    alu = cq.pending_instructions[-1]
    assert alu.imm == 40000 - 65536
    assert isa.decode(isa.encode(alu, env), env).imm == 40000 - 65536


def test_uop_fields_are_truncated(cq, env):
    lsb, width = env.isa.uop["dst_idx"]
    cq.push_gemm_op("g", one_uop(dst=(1 << width) + 3))
    program = cq.synchronize()
    assert isa.decode_uops(program.uops, env)[0].dst_idx == 3


def test_kernel_larger_than_uop_sram_is_rejected(cq, env):
    with pytest.raises(RuntimeCheckError, match=f"more than the uop SRAM depth {env.UOP_DEPTH}"):
        cq.push_alu_op("big", n_uops(env.UOP_DEPTH + 1, mode=1))


# ---- instruction fields from a kernel (spec §5.6) ---------------------------------------------

def _loops(*loops, mode=0):
    def finit(rec):
        for loop in loops:
            rec.loop_begin(*loop)
        rec.uop_push(mode, 0, 0, 0, 0, isa.ALU_MAX, 1, 0)
        for _ in loops:
            rec.loop_end()
    return finit


def _loop_fields(insn, with_wgt):
    names = ["iter_out", "dst_factor_out", "src_factor_out", "iter_in", "dst_factor_in", "src_factor_in"]
    if with_wgt:
        names += ["wgt_factor_out", "wgt_factor_in"]
    return {n: getattr(insn, n) for n in names}


@pytest.mark.parametrize("loops, expected", [
    ((), dict(iter_out=1, dst_factor_out=0, src_factor_out=0, iter_in=1, dst_factor_in=0, src_factor_in=0,
              wgt_factor_out=0, wgt_factor_in=0)),
    (((3, 1, 2, 4),), dict(iter_out=3, dst_factor_out=1, src_factor_out=2, iter_in=1, dst_factor_in=0,
                           src_factor_in=0, wgt_factor_out=4, wgt_factor_in=0)),
    (((3, 1, 2, 4), (5, 6, 7, 8)), dict(iter_out=3, dst_factor_out=1, src_factor_out=2, iter_in=5,
                                        dst_factor_in=6, src_factor_in=7, wgt_factor_out=4, wgt_factor_in=8)),
])
def test_gemm_loop_mapping(cq, loops, expected):
    cq.push_gemm_op("g", _loops(*loops))
    assert _loop_fields(cq.pending_instructions[-1], True) == expected


@pytest.mark.parametrize("loops, expected", [
    ((), dict(iter_out=1, dst_factor_out=0, src_factor_out=0, iter_in=1, dst_factor_in=0, src_factor_in=0)),
    # One ALU loop goes to the INNER fields (upstream PushALUUop).
    (((3, 1, 2, 4),), dict(iter_out=1, dst_factor_out=0, src_factor_out=0, iter_in=3, dst_factor_in=1,
                           src_factor_in=2)),
    (((3, 1, 2, 4), (5, 6, 7, 8)), dict(iter_out=3, dst_factor_out=1, src_factor_out=2, iter_in=5,
                                        dst_factor_in=6, src_factor_in=7)),
])
def test_alu_loop_mapping(cq, loops, expected):
    cq.push_alu_op("a", _loops(*loops, mode=1))
    alu = cq.pending_instructions[-1]
    assert _loop_fields(alu, False) == expected
    assert (alu.alu_opcode, alu.use_imm, alu.imm) == (isa.ALU_MAX, 1, 0)


# ---- uop SRAM residency, staging offsets and wrap (spec §5.5) ---------------------------------

def _uop_loads(insns):
    return [(i.sram_base, i.x_size, i.dram_base) for i in insns
            if isinstance(i, isa.MemInsn) and i.memory_type == UOP and i.x_size]


def test_load_uop_staging_offsets_follow_the_cache_list(cq, env):
    for site, n in (("k3", 3), ("k5", 5), ("k2", 2)):
        cq.push_alu_op(site, n_uops(n, mode=1))
    base = cq.uop_staging_phys // 4
    assert _uop_loads(cq.pending_instructions) == [(0, 3, base), (3, 5, base + 3), (8, 2, base + 8)]
    program = cq.synchronize()
    expected = np.concatenate([cq.kernels.lookup(s, None, None).words for s in ("k3", "k5", "k2")])
    np.testing.assert_array_equal(program.uops, expected)


@pytest.fixture
def small_cq():
    env = hwconfigs.get_env(LOG_UOP_BUFF_SIZE=5)      # 8 uops of SRAM
    mem = DeviceMemory()
    mem.alloc(1)
    return CommandQueue(env, mem)


def test_wrap_evicts_overlapped_kernels_and_reproduces_the_staging_defect(small_cq):
    cq = small_cq
    assert cq.env.UOP_DEPTH == 8
    for site, n in (("k1", 3), ("k2", 3), ("k3", 4), ("k1", 3)):
        cq.push_alu_op(site, n_uops(n, mode=1))
    base = cq.uop_staging_phys // 4
    # k3 does not fit behind k2 (6 + 4 > 8): wrap to 0, evicting k1 and k2; k1 then reloads at 4.
    assert _uop_loads(cq.pending_instructions) == [(0, 3, base), (3, 3, base + 3), (0, 4, base), (4, 3, base + 4)]
    program = cq.synchronize()
    words = {s: cq.kernels.lookup(s, None, None).words for s in ("k1", "k3")}
    # The staging buffer holds the final list (k3, k1): the loads emitted before the wrap read it
    # at their old offsets, as upstream does.
    np.testing.assert_array_equal(program.uops, np.concatenate([words["k3"], words["k1"]]))


def test_wrap_stops_evicting_at_the_first_kernel_beyond_the_new_range(small_cq):
    cq = small_cq
    for site, n in (("k1", 2), ("k2", 2), ("k3", 3), ("k4", 2)):
        cq.push_alu_op(site, n_uops(n, mode=1))
    before = len(cq.pending_instructions)
    cq.push_alu_op("k2", n_uops(2, mode=1))   # still resident at [2, 4)
    cq.push_alu_op("k3", n_uops(3, mode=1))   # still resident at [4, 7)
    assert len(cq.pending_instructions) == before + 2
    alu = cq.pending_instructions[-2]
    assert (alu.uop_bgn, alu.uop_end) == (2, 4)
    # k1 was evicted by k4; it reloads behind k4 at [2, 4), the ring's next slot, evicting k2
    # and stopping at k3 (which starts at 4).
    cq.push_alu_op("k1", n_uops(2, mode=1))
    assert _uop_loads(cq.pending_instructions)[-1][:2] == (2, 2)
    count = len(cq.pending_instructions)
    cq.push_alu_op("k3", n_uops(3, mode=1))
    assert len(cq.pending_instructions) == count + 1          # k3 still resident
    cq.push_alu_op("k2", n_uops(2, mode=1))
    assert _uop_loads(cq.pending_instructions)[-1][:2] == (4, 2)   # k2 reloads, evicting k3


# ---- auto-sync (spec §5.8) --------------------------------------------------------------------

def test_auto_synchronize_before_the_instruction_buffer_could_overflow(env):
    mem = DeviceMemory()
    buf = mem.alloc(4096)
    cq = CommandQueue(env, mem, max_xfer=20 * 16)
    for _ in range(16):
        cq.load_buffer_2d(buf, 0, 1, 1, 1, 0, 0, 0, 0, 0, INP)
    # After the 15th load (15 + 6) * 16 > 320: upstream synchronizes on its own.
    assert len(cq.programs) == 1
    program = cq.programs[0]
    assert len(program) == 15 + 4 and isinstance(program.instructions[-1], isa.FinishInsn)
    assert len(cq.pending_instructions) == 1

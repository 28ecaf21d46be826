"""The fast count path against the general one: ``dse.fastcount.count_candidate`` must equal a
general build + count-only run (every counter, the cycles, every TimingReport field) plus
``Module.footprint()``, and refuse exactly the knob sets the build refuses.

Two levels: the generated stream itself, column by column against the built program (cheap
enough for thousands of random knob sets), and the full count on a subset (and with timing
parameters that make the command queues fill, the replay's other branch)."""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

import hwconfigs
import simulator
from compiler import workloads
from compiler.ir import CompileError
from compiler.workloads import _emit, _streams
from dse.fastcount import count_candidate
from simulator._decode import COLUMNS, columns_from_objects

ENV = hwconfigs.get_env()
ENV_4X8 = hwconfigs.get_env("default", LOG_BATCH=2, LOG_BLOCK=3)
# 2x8 needs smaller wgt/acc buffers for the GEMM instruction's index fields to fit 128 bits.
ENV_2X8 = hwconfigs.get_env("default", LOG_BATCH=1, LOG_BLOCK=3, LOG_WGT_BUFF_SIZE=16, LOG_ACC_BUFF_SIZE=15)
R18 = workloads.resnet18(residual_adds=True)
BN_RELU = (("bias",), ("relu",), ("add", 1 << 7), ("shr", 8), ("clip", -127, 127))

# (layer, env, random knob sets drawn) of the default run: small layers, every construct.
SMALL = [
    (workloads.Conv2D(1, 8, 8, 32, 32, 3, 1, 1, epilogue=workloads.RESNET18_EPILOGUE), ENV, 150),
    (workloads.Conv2D(1, 8, 8, 32, 64, 1, 2, 0, epilogue=(("bias",), ("relu",), ("shr", 3))), ENV, 150),
    (workloads.Conv2D(1, 9, 9, 32, 32, 3, 2, 0), ENV, 150),
    (workloads.Conv2D(1, 10, 10, 32, 32, 3, 2, 1, epilogue=BN_RELU), ENV, 150),
    (workloads.Conv2D(1, 6, 6, 16, 32, 3, 1, 1, epilogue=()), ENV, 100),
    (workloads.Conv2D(1, 7, 7, 64, 32, 1, 1, 0, epilogue=(("bias",), ("min", 100), ("max", -100))), ENV, 120),
    (workloads.Conv2D(4, 8, 8, 32, 32, 3, 1, 1, epilogue=workloads.RESNET18_EPILOGUE), ENV_4X8, 150),
    (workloads.Conv2D(4, 9, 9, 16, 32, 3, 2, 1, epilogue=BN_RELU), ENV_4X8, 120),
    (workloads.Conv2D(2, 8, 8, 32, 32, 1, 1, 0, epilogue=workloads.RESNET18_EPILOGUE), ENV_2X8, 150),
    (workloads.Conv2D(2, 10, 10, 16, 16, 3, 2, 1, epilogue=BN_RELU), ENV_2X8, 120),
    (workloads.GroupConv2D(1, 8, 8, 64, 64, 3, 1, 1, groups=4, epilogue=BN_RELU), ENV, 100),
    (workloads.GroupConv2D(1, 9, 9, 64, 128, 3, 2, 1, groups=2, epilogue=()), ENV, 100),
    (workloads.GroupConv2D(4, 8, 8, 32, 32, 3, 2, 1, groups=2, epilogue=BN_RELU), ENV_4X8, 80),
    (workloads.Conv2DTranspose(1, 4, 4, 32, 32, 4, 2, 1, epilogue=BN_RELU), ENV, 100),
    (workloads.Conv2DTranspose(1, 5, 5, 16, 32, 3, 2, 1, output_padding=1, epilogue=()), ENV, 100),
    (workloads.Conv2DTranspose(2, 4, 4, 16, 16, 4, 2, 1, epilogue=BN_RELU), ENV_2X8, 80),
    (workloads.Dense(1, 256, 256, epilogue=(("bias",), ("shr", 6), ("clip", 0, 127))), ENV, 8),
    (workloads.Elementwise(1, 64, 14, 14, "add", epilogue=(("relu",), ("clip", -127, 127))), ENV, 100),
    (workloads.Elementwise(1, 32, 8, 8, "multiply", epilogue=(("shr", 20),)), ENV, 60),
    (workloads.Elementwise(4, 32, 8, 8, "add", epilogue=(("relu",),)), ENV_4X8, 60),
    (workloads.Elementwise(2, 16, 7, 7, "add", epilogue=(("max", -3), ("min", 90))), ENV_2X8, 60),
]
# what the fast path generates (Dense: general path)
COVERED = (workloads.Conv2D, workloads.GroupConv2D, workloads.Conv2DTranspose, workloads.Elementwise)


def _draws(layer, env, count, seed):
    """``count`` random knob sets of the layer's space (legal or not)."""
    space = workloads.knob_space(layer, env)
    rng = random.Random(seed)
    return [{name: rng.choice(values) for name, values in space.items()} for _ in range(count)]


def _legal(layer, env, count, seed):
    """``count`` random knob sets the static check admits (what the search evaluates)."""
    return workloads.random_legal_knobs(layer, env, random.Random(seed), count)


def _general(layer, env, knobs):
    try:
        return workloads.build(layer, env=env, knobs=knobs)
    except CompileError as err:
        return err


def check_stream(layer, env, knobs) -> str:
    """Generated columns vs the built program; returns 'refused', 'fallback' or 'equal'."""
    mod = _general(layer, env, knobs)
    try:
        fast = _streams.stream_columns(layer, env, knobs)
    except CompileError:
        assert isinstance(mod, CompileError), f"fast path refuses knobs the build accepts: {knobs}"
        return "refused"
    if fast is None:
        return "fallback"
    assert not isinstance(mod, CompileError), f"the build refuses ({mod}), the fast path does not: {knobs}"
    assert len(mod.programs) == 1
    ref = columns_from_objects(mod.programs[0].instructions)[0]
    assert ref.shape == fast.table.shape, knobs
    for i, name in enumerate(COLUMNS):
        if name != "dram_base":   # not generated: nothing counted depends on it
            np.testing.assert_array_equal(fast.table[i], ref[i], err_msg=f"column {name}, knobs {knobs}")
    assert fast.footprint == mod.footprint(), knobs
    return "equal"


def check_count(layer, env, knobs, timing_params=None) -> str:
    mod = _general(layer, env, knobs)
    try:
        fast = count_candidate(layer, env, knobs, timing_params)
    except CompileError:
        assert isinstance(mod, CompileError), knobs
        return "refused"
    assert not isinstance(mod, CompileError), knobs
    ref = simulator.run(mod, count_only=True, timing_params=timing_params)
    assert fast.stats == ref.stats, knobs
    assert (fast.cycles, fast.seconds) == (ref.cycles, ref.seconds), knobs
    assert [dataclasses.asdict(r) for r in fast.timing] == [dataclasses.asdict(r) for r in ref.timing], knobs
    assert fast.timing_row == ref.timing[0].as_row()
    assert fast.footprint == mod.footprint(), knobs
    return fast.path


def test_column_layout_is_the_simulators():
    assert _emit.COLUMNS == COLUMNS


IDS = [f"{type(c[0]).__name__}{i}" for i, c in enumerate(SMALL)]


@pytest.mark.parametrize("case", range(len(SMALL)), ids=IDS)
def test_generated_stream_equals_the_built_one(case):
    """Random legal knob sets: the same columns and footprint (or a rare, counted fallback)."""
    layer, env, count = SMALL[case]
    seen = {"refused": 0, "fallback": 0, "equal": 0}
    knobs_list = _legal(layer, env, count, seed=case)
    assert len(knobs_list) == count
    for knobs in knobs_list:
        seen[check_stream(layer, env, knobs)] += 1
    if isinstance(layer, COVERED):
        assert seen["fallback"] <= count // 50, seen
        assert seen["refused"] == 0, seen   # no knob set passes the static check and fails to build


@pytest.mark.parametrize("case", range(len(SMALL)), ids=IDS)
def test_refuses_exactly_what_the_build_refuses(case):
    """Unfiltered draws: the fast path raises CompileError exactly when the build does."""
    layer, env, _ = SMALL[case]
    for knobs in _draws(layer, env, 40, seed=50 + case):
        check_stream(layer, env, knobs)


@pytest.mark.parametrize("case", [0, 3, 6, 8, 10, 12, 13, 16, 17, 19, 20])
def test_fast_count_equals_the_general_count(case):
    layer, env, _ = SMALL[case]
    paths = [check_count(layer, env, knobs) for knobs in _legal(layer, env, 12, seed=100 + case)]
    assert set(paths) == ({"fast"} if isinstance(layer, COVERED) else {"general"})


def test_fast_count_with_full_command_queues():
    """A short command queue makes fetch stall: the replay's dispatch-limited branch."""
    layer, env, _ = SMALL[0]
    params = hwconfigs.TimingParams.for_env(env, cmd_queue_depth=4)
    paths = [check_count(layer, env, knobs, params) for knobs in _legal(layer, env, 10, seed=7)]
    assert "fast" in paths


@pytest.mark.parametrize("name", ["C11", "C4", "R4"])
def test_resnet18_layers(name):
    layer = R18[name]
    space = workloads.knob_space(layer, ENV)
    rng = random.Random(5)
    done = 0
    while done < 3:
        knobs = {k: rng.choice(v) for k, v in space.items()}
        try:
            k = workloads.check_knobs(layer, ENV, knobs)
        except CompileError:
            continue
        if k["tile_h"][1] * k["tile_w"][1] < 8 and name != "R4":   # keep the general build short
            continue
        assert check_count(layer, ENV, knobs) == "fast"
        done += 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "C10", "C11", "R1", "R2", "R3", "R4"])
def test_resnet18_sweep(name):
    layer = R18[name]
    for knobs in _legal(layer, ENV, 40, seed=int(name[1:]) + 20 * (name[0] == "R")):
        assert check_stream(layer, ENV, knobs) == "equal"


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(SMALL)))
def test_generated_stream_sweep(case):
    layer, env, count = SMALL[case]
    for knobs in _legal(layer, env, 5 * count, seed=1000 + case):
        check_stream(layer, env, knobs)


def test_column_count_of_a_token_popped_before_its_push(monkeypatch):
    """Compute pops a store->compute token that a *later* store pushes: the one-pass count
    cannot follow it and falls back to the event-driven replay; the report equals the cycle
    model's on the same program, and the counters the simulator's."""
    from compiler.isa import LOAD, MEM_OUT, MEM_UOP, STORE, FinishInsn, GemmInsn, MemInsn, Program
    from simulator import _replay
    from simulator.timing import TimingModel

    def store(**flags):
        return MemInsn(opcode=STORE, memory_type=MEM_OUT, sram_base=0, dram_base=0, y_size=1, x_size=1,
                       x_stride=1, **flags)

    insns = [MemInsn(opcode=LOAD, memory_type=MEM_UOP, sram_base=0, dram_base=0, y_size=1, x_size=1, x_stride=1),
             GemmInsn(reset_reg=1, uop_bgn=0, uop_end=1, iter_out=3, push_next=1),
             GemmInsn(reset_reg=1, uop_bgn=0, uop_end=1, push_next=1),
             GemmInsn(reset_reg=1, uop_bgn=0, uop_end=1, pop_next=1),
             store(pop_prev=1, push_prev=1),
             store(pop_prev=1, push_prev=1),
             FinishInsn(pop_next=1)]
    program = Program(ENV, insns, np.zeros(1, np.uint32), 0)
    table = columns_from_objects(program.instructions)[0]
    calls = []
    real = _replay.replay
    monkeypatch.setattr(_replay, "replay", lambda *args: calls.append(1) or real(*args))
    expected = TimingModel(ENV).estimate(program.instructions)
    stats, report = simulator.count_columns(ENV, table)
    assert calls, "the event-driven replay was not used"
    assert dataclasses.asdict(report) == dataclasses.asdict(expected)
    mod_stats = simulator.Simulator(ENV, dram_size=1 << 16)._decode(program).counters
    assert list(stats.values()) == mod_stats


@pytest.mark.parametrize("depth", [None, 8])
@pytest.mark.parametrize("name", ["C2", "C5", "C8", "C11", "C4"])
def test_repeat_hints_change_nothing(name, depth):
    """Adding periodic repetitions at once (the emitter's copy hints) gives the same counters
    and report as running every instruction, on random ResNet-18 candidates, and does skip
    work on some of them (without the general build, so many candidates fit the budget)."""
    from simulator.timing import TimingModel

    layer = R18[name]
    model = TimingModel(ENV, None if depth is None else hwconfigs.TimingParams.for_env(ENV, cmd_queue_depth=depth))
    skipped = 0
    for knobs in _legal(layer, ENV, 40, seed=300 + int(name[1:])):
        fast = _streams.stream_columns(layer, ENV, knobs)
        with_hints = model.count_rows(fast.table.T, None, fast.repeats)
        skipped += model.skipped_rows
        plain = model.count_rows(fast.table.T)
        assert model.skipped_rows == 0
        assert with_hints[0] == plain[0], knobs
        assert dataclasses.asdict(with_hints[1]) == dataclasses.asdict(plain[1]), knobs
    assert skipped > 0


def test_uop_sram_wrap_takes_the_general_path():
    """A small uop SRAM makes the runtime's kernel cache wrap (upstream's staging defect then
    applies): the generator declines and the general path answers, identically."""
    env = hwconfigs.get_env("default", LOG_UOP_BUFF_SIZE=8)   # 64 uops; two threads' kernels need more
    layer = SMALL[0][0]
    knobs = {"tile_h": [2, 4], "tile_w": [1, 8], "tile_ci": [1, 2], "tile_co": [1, 2], "h_nthread": 2,
             "load_level": "ci_block", "outer_order": "wch", "store_axis": "h"}
    assert _streams.stream_columns(layer, env, knobs) is None
    assert check_count(layer, env, knobs) == "general"


def test_warm_up_runs_the_fast_path():
    from dse import fastcount

    assert fastcount.warm_up() >= 0
    assert fastcount.warm_up(ENV_4X8) >= 0

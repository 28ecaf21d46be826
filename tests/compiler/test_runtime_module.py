"""``compiler.module.Module`` (arguments, DRAM size, save/load) and ``simulator.run`` binding."""
from __future__ import annotations

import numpy as np
import pytest

import hwconfigs
from compiler import isa
from compiler.module import ArgBuffer, Module, load
from tests.compiler.test_runtime import stream_matrix_multiply, stream_matrix_multiply_opt

MM_ARGS = [("A", (1, 16, 1, 16), "int8"), ("B", (16, 16, 16, 16), "int8"), ("C", (1, 16, 1, 16), "int8")]
MMOPT_ARGS = [("data", (1, 64, 1, 16), "int8"), ("weight", (64, 64, 16, 16), "int8"),
              ("res", (1, 64, 1, 16), "int8")]


@pytest.fixture(scope="module")
def env():
    return hwconfigs.get_env()


def _mm_module(env, lowered_ir=None):
    cq, bufs = stream_matrix_multiply(env)
    return Module.from_command_queue("matrix_multiply", cq, [(n, s, d, bufs[n]) for n, s, d in MM_ARGS],
                                     lowered_ir=lowered_ir)


def _mmopt_module(env, calls):
    cq, bufs = stream_matrix_multiply_opt(env, calls)
    return Module.from_command_queue("mmopt", cq, [(n, s, d, bufs[n]) for n, s, d in MMOPT_ARGS])


def test_module_arguments_outputs_and_dram_size(env):
    mod = _mm_module(env)
    assert [(a.name, a.phys_addr, a.nbytes, a.is_output) for a in mod.args] == [
        ("A", 0x1000, 256, False), ("B", 0x2000, 65536, False), ("C", 0x12000, 256, True)]
    assert mod.outputs == [mod.args[2]]
    assert len(mod.program) == 56 and mod.program.uop_base == 0x13000
    # Enough for the uop staging words the LOAD UOPs read, rounded to a page.
    assert mod.dram_size == 0x14000


def test_module_with_several_programs(env):
    mod = _mmopt_module(env, calls=2)
    assert [len(p) for p in mod.programs] == [142, 143]
    with pytest.raises(ValueError, match="2 programs"):
        mod.program


def test_argument_must_fit_its_allocation(env):
    cq, bufs = stream_matrix_multiply(env)
    with pytest.raises(ValueError, match="does not fit"):
        Module.from_command_queue("mm", cq, [("A", (2, 4096), "int8", bufs["A"])])


def test_save_load_round_trip(env, tmp_path):
    mod = _mmopt_module(env, calls=2)
    mod.lowered_ir = "// lowered IR text"
    path = tmp_path / "mmopt.vta"
    mod.save(path)
    back = load(path)
    assert back.env == env and back.name == mod.name and back.dram_size == mod.dram_size
    assert back.args == mod.args and back.lowered_ir == mod.lowered_ir
    for ours, theirs in zip(mod.programs, back.programs):
        assert theirs.to_bytes() == ours.to_bytes()
        assert theirs.instructions == ours.instructions      # fields were truncated when emitted
        np.testing.assert_array_equal(theirs.uops, ours.uops)
        assert theirs.uop_base == ours.uop_base


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a module")
    with pytest.raises(ValueError, match="not a saved module"):
        load(path)


def test_arg_buffer_dict_round_trip():
    arg = ArgBuffer("x", (2, 3), "int32", 0x1000, 24, True)
    assert ArgBuffer.from_dict(arg.to_dict()) == arg


# ---- simulator.run ---------------------------------------------------------------------------

def _run():
    try:
        from simulator import Simulator  # noqa: F401
    except ImportError:
        pytest.skip("simulator.Simulator is not available yet")
    from simulator._run import run
    return run


def _mm_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, shape, dtype=np.int8) if name != "C" else np.zeros(shape, np.int8)
            for name, shape, _ in MM_ARGS]


@pytest.mark.parametrize("index, change, match", [
    (1, lambda a: a.astype(np.int32), "argument 1 \\('B'\\).*dtype int32"),
    (0, lambda a: a.reshape(16, 16), "argument 0 \\('A'\\).*shape \\(16, 16\\)"),
    (2, lambda a: "C", "argument 2 \\('C'\\).*numpy array"),
])
def test_run_names_the_bad_argument(env, index, change, match):
    run = _run()
    mod = _mm_module(env)
    arrays = _mm_arrays()
    arrays[index] = change(arrays[index])
    with pytest.raises((ValueError, TypeError), match=match):
        run(mod, *arrays)


def test_run_needs_every_argument(env):
    run = _run()
    with pytest.raises(ValueError, match="takes 3 arrays \\(A, B, C\\), got 2"):
        run(_mm_module(env), *_mm_arrays()[:2])


def test_run_rejects_a_read_only_output(env):
    run = _run()
    arrays = _mm_arrays()
    arrays[2].flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        run(_mm_module(env), *arrays)


def test_count_only_needs_no_arrays_and_keeps_the_timing_attributes(env):
    run = _run()
    mod = _mm_module(env)
    counted = run(mod, count_only=True)
    full = run(mod, *_mm_arrays())
    assert counted.stats == full.stats and counted.stats["gemm_counter"] == 256
    # Timing depends only on the instruction stream, so counting alone gives the same latency.
    assert counted.cycles == full.cycles > counted.stats["gemm_counter"]
    assert counted.seconds == full.seconds == full.cycles / (env.fpga.freq_mhz * 1e6)


def test_run_of_a_saved_module_gives_the_same_result(env, tmp_path):
    run = _run()
    mod = _mm_module(env)
    mod.save(tmp_path / "mm.npz")
    a, b, c1 = _mm_arrays(3)
    c2 = c1.copy()
    first, second = run(mod, a, b, c1), run(load(tmp_path / "mm.npz"), a, b, c2)
    assert first.stats == second.stats
    np.testing.assert_array_equal(c1, c2)
    assert np.any(c1 != 0)


def test_two_synchronizes_run_in_order_on_one_simulator(env):
    """The second stream pops the store->compute token the first one left (spec §5.7)."""
    run = _run()
    mod = _mmopt_module(env, calls=2)
    rng = np.random.default_rng(4)
    data = rng.integers(-128, 128, (1, 64, 1, 16), dtype=np.int8)
    weight = rng.integers(-128, 128, (64, 64, 16, 16), dtype=np.int8)
    res = np.zeros((1, 64, 1, 16), np.int8)
    result = run(mod, data, weight, res)
    assert len(result.program_stats) == 2 and result.program_stats[0] == result.program_stats[1]
    assert result.stats["gemm_counter"] == 2 * 4096
    acc = np.einsum("ki,okji->oj", data[0, :, 0, :].astype(np.int32), weight.astype(np.int32))
    np.testing.assert_array_equal(res[0, :, 0, :], np.clip(acc >> 8, 0, 127).astype(np.int8))


def test_run_on_a_given_simulator_checks_its_dram(env):
    run = _run()
    from simulator import Simulator
    mod = _mm_module(env)
    with pytest.raises(ValueError, match="smaller than"):
        run(mod, *_mm_arrays(), sim=Simulator(env, dram_size=0x2000))
    sim = Simulator(env, dram_size=mod.dram_size)
    assert run(mod, *_mm_arrays(), sim=sim).stats["inp_load_nbytes"] == 256
    assert isinstance(mod.program.instructions[-1], isa.FinishInsn)

"""4-bit inputs and weights (LOG_INP_WIDTH = LOG_WGT_WIDTH = 2) through compiler and simulator:
packed two to a byte in DRAM, one sign-extended scalar per SRAM lane, truncated on STORE."""
import numpy as np
import pytest

import compiler
import hwconfigs
import simulator
from compiler import isa, workloads
from examples import matrix_multiply as mm


@pytest.fixture(scope="module")
def env4():
    # half the bytes of the default buffers: upstream's depths, so the instruction fields still fit
    return hwconfigs.get_env(LOG_INP_WIDTH=2, LOG_WGT_WIDTH=2, LOG_INP_BUFF_SIZE=14, LOG_WGT_BUFF_SIZE=17)


def test_packing_is_little_endian_within_a_byte():
    values = np.array([[1, -2, 7, -8], [0, -1, 3, 4]], dtype=np.int8)
    raw = isa.pack_scalars(values, 4)
    assert raw.tolist() == [[0xE1, 0x87], [0xF0, 0x43]]      # scalar 0 in the low nibble
    np.testing.assert_array_equal(isa.unpack_scalars(raw, 4), values)
    two = np.array([1, -1, -2, 0], dtype=np.int8)
    np.testing.assert_array_equal(isa.unpack_scalars(isa.pack_scalars(two, 2), 2), two)
    assert isa.dtype_bits("int4") == 4 and isa.dtype_bits("int32") == 32 and isa.host_dtype("int4") == np.int8
    assert isa.buffer_nbytes((3, 16), "int4") == 24
    with pytest.raises(ValueError, match="1, 2 or 4 bits"):
        isa.dtype_bits("int3")


def test_four_bit_env(env4):
    assert (env4.inp_dtype, env4.wgt_dtype, env4.out_dtype) == ("int4", "int4", "int4")
    assert (env4.INP_ELEM_BYTES, env4.WGT_ELEM_BYTES, env4.OUT_ELEM_BYTES) == (8, 128, 8)
    assert (env4.INP_DEPTH, env4.WGT_DEPTH, env4.ACC_DEPTH) == (2048, 1024, 2048)


def _gemm(env, seed=0):
    (o, n, m), tensors = mm.declare(env)
    mod = compiler.build(mm.schedule(env, tensors), [tensors[0], tensors[1], tensors[5]], env=env, name="gemm4")
    rng = np.random.default_rng(seed)
    a = rng.integers(-8, 8, size=(o * env.BATCH, n * env.BLOCK_IN)).astype(np.int8)
    b = rng.integers(-8, 8, size=(m * env.BLOCK_OUT, n * env.BLOCK_IN)).astype(np.int8)
    a_packed = a.reshape(o, env.BATCH, n, env.BLOCK_IN).transpose((0, 2, 1, 3))
    b_packed = b.reshape(m, env.BLOCK_OUT, n, env.BLOCK_IN).transpose((0, 2, 1, 3))
    return mod, a, b, a_packed, b_packed, (o, m)


def test_matrix_multiply_tutorial_on_four_bits(env4):
    mod, a, b, a_packed, b_packed, (o, m) = _gemm(env4)
    assert [arg.dtype for arg in mod.args] == ["int4", "int4", "int4"]
    assert [arg.nbytes for arg in mod.args] == [128, 32768, 128]              # half of the 8-bit tutorial's
    out = np.zeros((o, m, env4.BATCH, env4.BLOCK_OUT), dtype=np.int8)
    res = simulator.run(mod, a_packed, b_packed, out)
    acc = a.astype(np.int32) @ b.T.astype(np.int32)
    expected = ((acc & 0xF) ^ 8) - 8                                         # STORE keeps the low 4 bits
    expected = expected.astype(np.int8).reshape(o, env4.BATCH, m, env4.BLOCK_OUT).transpose((0, 2, 1, 3))
    np.testing.assert_array_equal(out, expected)
    assert res.stats["inp_load_nbytes"] == 128 and res.stats["wgt_load_nbytes"] == 32768
    assert res.stats["gemm_counter"] == 256


def test_host_arrays_of_four_bit_buffers_are_checked(env4):
    mod, _, _, a_packed, b_packed, (o, m) = _gemm(env4)
    out = np.zeros((o, m, env4.BATCH, env4.BLOCK_OUT), dtype=np.int8)
    with pytest.raises(ValueError, match=r"'A' holds int4 values, so in \[-8, 7\]; got \[-9, "):
        simulator.run(mod, np.where(a_packed == 0, -9, a_packed).astype(np.int8), b_packed, out)
    with pytest.raises(ValueError, match=r"dtype int16, the buffer holds int4 \(as int8 values\)"):
        simulator.run(mod, a_packed.astype(np.int16), b_packed, out)


@pytest.mark.parametrize("layer", [
    workloads.Conv2D(batch=1, height=14, width=14, in_channels=32, out_channels=32, kernel=3, stride=1, pad=1),
    workloads.Dense(batch=1, in_features=64, out_features=32),
    workloads.Conv2D(batch=1, height=7, width=7, in_channels=32, out_channels=16, kernel=1, stride=1, pad=0,
                     epilogue=(("bias",), ("shr", 2), ("clip", -8, 7))),
], ids=["conv2d", "dense", "conv2d_bias_clip"])
def test_op_library_layers_run_bit_exactly_on_four_bits(env4, layer):
    mod = workloads.build(layer, env=env4, knobs=None)
    inputs = workloads.random_inputs(layer, env4, 1)
    assert inputs[0].dtype == np.int8 and inputs[0].min() >= -8 and inputs[0].max() <= 7
    assert inputs[0].min() == -8 and inputs[0].max() == 7                    # the whole int4 range
    out = workloads.empty_output(layer, env4)
    simulator.run(mod, *inputs, out)
    np.testing.assert_array_equal(out, workloads.reference(layer, *inputs, env=env4))


def test_four_bit_knob_space_has_no_int8_bias_loads(env4):
    layer = workloads.Conv2D(batch=1, height=14, width=14, in_channels=32, out_channels=32, kernel=3, stride=1, pad=1,
                             epilogue=(("bias",), ("shr", 4), ("clip", -8, 7)))
    assert workloads.knob_space(layer, env4)["bias_dtype"] == ["int32"]
    assert workloads.knob_space(layer, hwconfigs.get_env())["bias_dtype"] == ["int32", "int8"]


def test_four_bit_module_saves_and_loads(env4, tmp_path):
    mod, a, b, a_packed, b_packed, (o, m) = _gemm(env4, seed=3)
    mod.save(tmp_path / "g4.vta")
    again = compiler.load(tmp_path / "g4.vta")
    first, second = (np.zeros((o, m, env4.BATCH, env4.BLOCK_OUT), dtype=np.int8) for _ in range(2))
    simulator.run(mod, a_packed, b_packed, first)
    simulator.run(again, a_packed, b_packed, second)
    assert [arg.dtype for arg in again.args] == ["int4"] * 3
    np.testing.assert_array_equal(first, second)

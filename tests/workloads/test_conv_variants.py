"""GroupConv2D and Conv2DTranspose (upstream's group_conv2d_packed and conv2d_transpose_packed):
layer validation, the references, every knob set computing the answer or refused by name, and
TopHub's MobileNet-G and DCGAN records."""
import json
import random

import numpy as np
import pytest

import hwconfigs
import simulator
from compiler import workloads
from compiler.ir import CompileError
from compiler.workloads._tophub import _DATA as TOPHUB_DATA


def test_group_conv_shapes_and_macs():
    layer = workloads.GroupConv2D(1, 56, 56, 128, 128, 3, stride=2, pad=1, groups=8, count=2, name="G")
    assert (layer.out_height, layer.out_width) == (28, 28)
    assert layer.macs == 128 * 28 * 28 * 16 * 9
    assert layer.count == 2 and layer.name == "G"


def test_transpose_shapes_follow_relay():
    # DCGAN's first transposed conv: 4x4 -> 8x8 with a 4x4 kernel, stride 2, pad 1
    layer = workloads.Conv2DTranspose(1, 4, 4, 1024, 512, 4, stride=2, pad=1)
    assert (layer.dilated_height, layer.out_height, layer.out_width) == (7, 8, 8)
    assert workloads.Conv2DTranspose(1, 4, 4, 16, 16, 3, stride=2, pad=1, output_padding=1).out_height == 8


@pytest.mark.parametrize("cls, kwargs, words", [
    (workloads.GroupConv2D, {"groups": 3}, ["groups = 3", "in_channels"]),
    (workloads.GroupConv2D, {"groups": 0}, ["groups = 0"]),
    (workloads.Conv2DTranspose, {"pad": 4}, ["pad = 4", "kernel - 1"]),
    (workloads.Conv2DTranspose, {"output_padding": 2, "stride": 2}, ["output_padding = 2", "stride 2"]),
    (workloads.Conv2DTranspose, {"output_padding": -1}, ["output_padding = -1"]),
    (workloads.Conv2DTranspose, {"height": 1, "width": 1, "kernel": 2, "pad": 1}, ["pad 1 leaves no output"]),
])
def test_bad_layers_are_refused_naming_the_field(cls, kwargs, words):
    with pytest.raises(CompileError) as err:
        cls(**{"batch": 1, "height": 8, "width": 8, "in_channels": 32, "out_channels": 32, "kernel": 4, **kwargs})
    assert all(w in str(err.value) for w in words)


def test_dilate_input_puts_zeros_between_pixels():
    layer = workloads.Conv2DTranspose(1, 3, 2, 16, 16, 3, stride=2, pad=1)
    data = np.arange(1, 1 + 3 * 2 * 16, dtype=np.int8).reshape(1, 1, 3, 2, 1, 16)
    dilated = workloads.dilate_input(layer, data)
    assert dilated.shape == (1, 1, 5, 3, 1, 16)
    assert (dilated[:, :, ::2, ::2] == data).all()
    assert not dilated[:, :, 1::2].any() and not dilated[:, :, :, 1::2].any()


# ---- templates -------------------------------------------------------------------------------

ENV = hwconfigs.get_env()
ENV_4X8 = hwconfigs.get_env("default", LOG_BATCH=2, LOG_BLOCK=3)
ENV_2X8 = hwconfigs.get_env("default", LOG_BATCH=1, LOG_BLOCK=3, LOG_WGT_BUFF_SIZE=16, LOG_ACC_BUFF_SIZE=15)
BN_RELU = (("bias",), ("relu",), ("add", 1 << 7), ("shr", 8), ("clip", -127, 127))
G, T = workloads.GroupConv2D, workloads.Conv2DTranspose

# (layer, env): groups 1, 2, 4 and one block per group (MobileNet-G's depthwise-like case), strides
# 1 and 2, with and without padding, output padding, on 1x16, 4x8 and 2x8, with epilogues
CASES = [
    (G(1, 8, 8, 32, 32, 3, 1, 1, groups=1, epilogue=BN_RELU), ENV),
    (G(1, 8, 8, 64, 64, 3, 1, 1, groups=4), ENV),
    (G(1, 9, 9, 64, 128, 3, 2, 0, groups=2, epilogue=(("bias",), ("shr", 5), ("clip", 0, 127))), ENV),
    (G(1, 10, 10, 64, 64, 3, 2, 1, groups=2, epilogue=()), ENV),
    (G(4, 8, 8, 32, 32, 3, 1, 1, groups=4, epilogue=BN_RELU), ENV_4X8),
    (G(2, 8, 8, 32, 64, 3, 2, 1, groups=2, epilogue=(("shr", 4), ("relu",))), ENV_2X8),
    (T(1, 4, 4, 32, 32, 4, 2, 1, epilogue=BN_RELU), ENV),
    (T(1, 5, 5, 16, 32, 3, 2, 1, output_padding=1), ENV),
    (T(1, 6, 6, 32, 16, 3, 1, 0, epilogue=(("bias",), ("shr", 6))), ENV),
    (T(4, 4, 4, 16, 16, 4, 2, 1, epilogue=BN_RELU), ENV_4X8),
    (T(2, 3, 3, 16, 16, 3, 2, 2, output_padding=1, epilogue=(("shr", 3),)), ENV_2X8),
]
IDS = [f"{type(layer).__name__}{i}" for i, (layer, _) in enumerate(CASES)]


def _run(layer, env, knobs, seed=0):
    mod = workloads.build(layer, env=env, knobs=knobs)
    inputs = workloads.random_inputs(layer, env, seed, knobs)
    out = workloads.empty_output(layer, env)
    result = simulator.run(mod, *inputs, out)
    return mod, result, out, workloads.reference(layer, *inputs, env=env)


def _transposed_conv(x, w, stride, pad, output_padding):
    """Relay's conv2d_transpose by its definition (every input pixel scatters the kernel into
    the output), NCHW data and an IOHW weight: independent of the dilate-and-correlate form."""
    n, c, h, wd = x.shape
    o, k = w.shape[1], w.shape[2]
    full = np.zeros((n, o, (h - 1) * stride + k + output_padding, (wd - 1) * stride + k + output_padding), np.int64)
    for i in range(h):
        for j in range(wd):
            full[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += np.einsum(
                "nc,cokl->nokl", x[:, :, i, j], w)
    oh = (h - 1) * stride - 2 * pad + k + output_padding
    return full[:, :, pad:pad + oh, pad:pad + oh]


def test_transposed_reference_is_relays_conv2d_transpose():
    layer = T(1, 5, 5, 16, 32, 3, 2, 1, output_padding=1, epilogue=())
    data, kernel = workloads.random_inputs(layer, ENV, 3)
    x = data[:, :, ::2, ::2].astype(np.int64).transpose(0, 1, 4, 5, 2, 3).reshape(1, 16, 5, 5)
    # the packed kernel (O/c, C/c, k, k, c, c) is the IOHW ConvTranspose weight, swapped and flipped
    k = kernel.astype(np.int64).transpose(0, 4, 1, 5, 2, 3).reshape(32, 16, 3, 3)
    iohw = k.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
    expected = _transposed_conv(x, iohw, 2, 1, 1).astype(np.int8)   # STORE keeps the low 8 bits
    got = workloads.reference(layer, data, kernel, env=ENV)
    np.testing.assert_array_equal(got.transpose(0, 1, 4, 5, 2, 3).reshape(expected.shape), expected)


def test_group_reference_is_one_conv_per_group():
    layer = G(1, 6, 6, 64, 32, 3, 1, 1, groups=2, epilogue=(("shr", 4),))
    data, kernel = workloads.random_inputs(layer, ENV, 5)
    got = workloads.reference(layer, data, kernel, env=ENV)
    for g in range(2):
        conv = workloads.Conv2D(1, 6, 6, 32, 16, 3, 1, 1, epilogue=(("shr", 4),))
        part = workloads.reference(conv, data[:, 2 * g:2 * g + 2], kernel[g:g + 1], env=ENV)
        np.testing.assert_array_equal(got[:, g:g + 1], part)


@pytest.mark.parametrize("case", range(len(CASES)), ids=IDS)
def test_random_legal_knob_sets_compute_the_answer(case):
    layer, env = CASES[case]
    knob_sets = workloads.random_legal_knobs(layer, env, random.Random(case), 4)
    assert len(knob_sets) == 4
    for i, knobs in enumerate([None] + knob_sets):
        _, result, out, expected = _run(layer, env, knobs, seed=i)
        np.testing.assert_array_equal(out, expected, err_msg=f"knobs {knobs}")
        counted = simulator.run(workloads.build(layer, env=env, knobs=knobs), count_only=True)
        assert counted.stats == result.stats and counted.cycles == result.cycles


def test_stream_footprint_and_counts_agree_with_the_module():
    from dse.fastcount import count_candidate

    for layer, env in (CASES[1], CASES[6]):
        for knobs in workloads.random_legal_knobs(layer, env, random.Random(11), 3):
            mod = workloads.build(layer, env=env, knobs=knobs)
            fast = count_candidate(layer, env, knobs)
            assert fast.path == "fast" and fast.footprint == mod.footprint()
            assert fast.stats == simulator.run(mod, count_only=True).stats


@pytest.mark.parametrize("layer, knobs, words", [
    (G(1, 8, 8, 64, 64, 3, 1, 1, groups=4), {"tile_co": [2, 2]}, ["tile_co [2, 2]", "spans groups of 1"]),
    (G(1, 8, 8, 64, 192, 3, 1, 1, groups=2), {"tile_co": [6, 2], "oc_nthread": 2}, ["oc_nthread 2", "3 output"]),
    (G(1, 8, 8, 64, 64, 3, 1, 1, groups=2), {"tile_ci": [1, 4]}, ["tile_ci", "does not divide the axis extent 2"]),
    (G(1, 8, 8, 64, 64, 3, 1, 1, groups=2), {"tile_ci": [-1, 2]}, ["tile_ci", "padded input tile"]),
    (G(1, 8, 8, 64, 64, 3, 1, 1, groups=2), {"groups": 2}, ["unknown knob 'groups'"]),
    (T(1, 16, 16, 32, 64, 4, 2, 1), {"tile_h": [1, 32], "tile_w": [1, 32], "tile_co": [1, 4]},
     ["acc buffer needs"]),
    (T(1, 4, 4, 32, 32, 4, 2, 1), {"tile_h": [4, 2], "tile_w": [4, 2], "tile_co": [1, 2], "store_axis": "h"},
     ["accumulator element", "apart"]),
])
def test_illegal_knobs_are_refused_statically_naming_the_knob(layer, knobs, words):
    with pytest.raises(CompileError) as err:
        workloads.check_knobs(layer, ENV, knobs)
    assert all(w in str(err.value) for w in words), str(err.value)
    with pytest.raises(CompileError):
        workloads.build(layer, env=ENV, knobs=knobs)


def test_a_group_not_of_whole_blocks_is_refused():
    layer = G(1, 8, 8, 32, 32, 3, 1, 1, groups=32)   # one channel per group: depthwise, not VTA's
    with pytest.raises(CompileError, match=r"in_channels / groups = 1 is not a multiple of 16"):
        workloads.check_knobs(layer, ENV, None)


def _tophub_records(op):
    data = json.loads(TOPHUB_DATA.read_text())   # the shipped copy of the published TopHub log
    for section in data["sections"]:
        for rec in section["records"]:
            if rec["layer"]["op"] == op:
                yield section["hw"], rec


def _layer_of(rec, epilogue=workloads.TUTORIAL_EPILOGUE):
    L = rec["layer"]
    common = dict(batch=L["N"], height=L["H"], width=L["W"], in_channels=L["C_in"], out_channels=L["C_out"],
                  kernel=L["KH"], epilogue=epilogue)
    if L["op"] == "group_conv2d":
        return G(**common, stride=L["stride"], pad=L["pad"], groups=L["groups"])
    return T(**common, stride=L["stride"][0], pad=L["pad"][0], output_padding=L["output_padding"][0])


def _env_of(hw):
    return hwconfigs.get_env("pynq", **{k: hw[k] for k in hw if k.startswith("LOG_")})


@pytest.mark.parametrize("op", ["group_conv2d", "conv2d_transpose"])
def test_tophub_records_are_found_accepted_unchanged_and_build(op):
    """MobileNet-G's and DCGAN's TopHub knob sets: tophub_knobs finds each, check_knobs keeps it,
    and the TopHub and fallback schedules build and count (the GEMMs are the arithmetic's,
    zero taps of the dilated input included, as upstream's skip pass does not remove them here)."""
    records = list(_tophub_records(op))
    assert len(records) >= 3
    for hw, rec in records:
        layer, env = _layer_of(rec), _env_of(hw)
        (_, data, _), (_, kernel, _) = workloads.input_shapes(layer, env)[:2]
        if op == "conv2d_transpose":   # TopHub records the input before the CPU's zero insertion
            data = data[:2] + (layer.height, layer.width) + data[4:]
        assert [rec["data_shape"], rec["kernel_shape"]] == [list(data), list(kernel)]
        assert rec["knobs"] in workloads.tophub_knobs(layer, env)
        knobs = workloads.check_knobs(layer, env, rec["knobs"])
        for name, value in rec["knobs"].items():
            if isinstance(value, list):   # a split: the same inner, the outer given or resolved
                assert knobs[name][1] == value[1] and value[0] in (-1, knobs[name][0]), name
            else:
                assert knobs[name] == value, name
        stats = simulator.run(workloads.build(layer, env=env, knobs=rec["knobs"]), count_only=True).stats
        g = workloads._layers.conv_geometry(layer)
        per_group_in = layer.in_channels // g.groups
        macs = layer.batch * layer.out_channels * g.out_height * g.out_width * per_group_in * g.kernel ** 2
        assert stats["gemm_counter"] * env.BATCH * env.BLOCK_IN * env.BLOCK_OUT == macs


def _tophub_and_fallback(rec, hw):
    """(layer, env, knobs): TopHub's knob set with upstream's test epilogue (shift and clip; the
    DCGAN knob sets fill the accumulator, leaving no room for a bias tile) and the fallback with a
    bias, relu, rounding and clip."""
    env = _env_of(hw)
    yield _layer_of(rec), env, rec["knobs"]
    yield _layer_of(rec, BN_RELU), env, None


def test_a_tophub_layer_with_tophub_and_fallback_knobs_computes_the_answer():
    hw, rec = list(_tophub_records("group_conv2d"))[-1]   # MobileNet-G's 7x7x1024, 64 groups
    for layer, env, knobs in _tophub_and_fallback(rec, hw):
        _, _, out, expected = _run(layer, env, knobs)
        np.testing.assert_array_equal(out, expected)


SLOW_RECORDS = [(op, i) for op, n in (("group_conv2d", 9), ("conv2d_transpose", 3)) for i in range(n)]


@pytest.mark.slow
@pytest.mark.parametrize("op, index", SLOW_RECORDS, ids=[f"{op}-{i}" for op, i in SLOW_RECORDS])
def test_mobilenet_g_and_dcgan_tophub_layers_compute_the_answer(op, index):
    records = list(_tophub_records(op))
    assert len(records) == sum(o == op for o, _ in SLOW_RECORDS)   # every record is a case
    hw, rec = records[index]
    for layer, env, knobs in _tophub_and_fallback(rec, hw):
        _, _, out, expected = _run(layer, env, knobs)
        np.testing.assert_array_equal(out, expected, err_msg=f"{layer.describe()} knobs {knobs}")

"""Layer specs, knob spaces, the static feasibility check and the numpy reference."""
import json

import numpy as np
import pytest

import hwconfigs
from compiler import workloads
from compiler.ir import CompileError
from tests.conftest import reference_file

ENV = hwconfigs.get_env()


def test_resnet18_layers_and_multiplicities_match_the_tophub_records():
    ref = json.loads(reference_file("resnet18_pynq_1x16.json").read_text())
    layers = workloads.resnet18()
    assert list(layers) == [entry["layer"] for entry in ref["layers"]]
    for entry in ref["layers"]:
        layer = layers[entry["layer"]]
        assert layer.count == entry["count_in_resnet18"]
        hw, rest = entry["shape"].split("x", 1)
        assert layer.height == int(hw) and f"{layer.in_channels}->{layer.out_channels}" in entry["shape"]
        assert f"stride {layer.stride}, pad {layer.pad}" in entry["shape"]


def test_tophub_knobs_are_accepted_unchanged():
    ref = json.loads(reference_file("resnet18_pynq_1x16.json").read_text())
    layers = workloads.resnet18()
    for entry in ref["layers"]:
        knobs = workloads.check_knobs(layers[entry["layer"]], ENV, entry["tophub_cfg"])
        assert {k: knobs[k] for k in entry["tophub_cfg"]} == entry["tophub_cfg"]
        # the knobs beyond upstream's stay at upstream's choice
        assert knobs["outer_order"] == "hcw" and knobs["store_axis"] == "co" and knobs["load_level"] == "ci_tile"


def test_knob_space_holds_every_factor_split_and_the_fallback_first():
    layer = workloads.Conv2D(1, 14, 14, 256, 256, 3, 1, 1)
    space = workloads.knob_space(layer, ENV)
    assert space["tile_h"] == [[14, 1], [7, 2], [2, 7], [1, 14]]
    assert space["tile_ci"][0] == [16, 1] and space["tile_ci"][-1] == [1, 16]
    assert space["oc_nthread"] == [1, 2] and space["h_nthread"] == [1, 2]
    fallback = workloads.fallback_knobs(layer, ENV)
    assert all(fallback[k] == v[0] for k, v in space.items())
    dense_space = workloads.knob_space(workloads.Dense(1, 1024, 1024), ENV)
    assert set(dense_space) == {"tile_b", "tile_ci", "tile_co", "oc_nthread", "load_level", "gemm_order"}


def test_minus_one_outer_is_resolved_as_autotvm_does():
    layer = workloads.Dense(1, 256, 256)
    assert workloads.normalize_knobs(layer, ENV, {"tile_co": [-1, 4]})["tile_co"] == [4, 4]


@pytest.mark.parametrize("knobs, words", [
    ({"tile_h": [3, 5]}, ["tile_h", "does not divide", "14"]),
    ({"tile_h": [3, 7]}, ["tile_h", "outer x inner"]),
    ({"tile_x": [1, 1]}, ["unknown knob 'tile_x'"]),
    ({"oc_nthread": 3}, ["oc_nthread", "1 or 2"]),
    ({"tile_co": [1, 16], "oc_nthread": 2}, ["oc_nthread 2 does not divide", "tile_co"]),
    ({"tile_h": [1, 14], "tile_w": [1, 14], "tile_co": [1, 16]}, ["acc buffer needs", "has 131072 B"]),
    ({"tile_ci": [1, 16]}, ["tile_ci [1, 16]", "padded input tile", "load_level 'ci_block'"]),
    ({"store_axis": "c"}, ["store_axis", "one of ['co', 'h', 'w']"]),
])
def test_static_check_rejects_with_the_knob_and_numbers(knobs, words):
    layer = workloads.Conv2D(1, 14, 14, 256, 256, 3, 1, 1)
    with pytest.raises(CompileError) as info:
        workloads.check_knobs(layer, ENV, knobs)
    for word in words:
        assert word in str(info.value)


def test_static_check_counts_the_weight_tile_of_the_whole_reduction_tile():
    unpadded = workloads.Conv2D(1, 14, 14, 256, 256, 5, 1, 0)
    whole = {"tile_h": [1, 10], "tile_w": [1, 10], "tile_ci": [2, 8], "tile_co": [2, 8]}
    with pytest.raises(CompileError, match="wgt buffer needs 409600 B for 1 thread"):
        workloads.check_knobs(unpadded, ENV, whole)
    workloads.check_knobs(unpadded, ENV, {**whole, "load_level": "ci_block"})


def test_layers_must_be_whole_tiles_and_positive():
    with pytest.raises(CompileError, match="in_channels = 24 is not a multiple of 16"):
        workloads.knob_space(workloads.Conv2D(1, 8, 8, 24, 16, 3, 1, 1), ENV)
    with pytest.raises(CompileError, match="Conv2D.kernel = 0"):
        workloads.Conv2D(1, 8, 8, 16, 16, 0)
    with pytest.raises(CompileError, match="unknown operation 'tanh'"):
        workloads.Conv2D(1, 8, 8, 16, 16, 3, epilogue=(("tanh",),))


def _naive_conv(layer, data, kernel, bias):
    """Straight from the definition, one output scalar at a time (small layers only)."""
    n, c, h, w, bn, bc = data.shape
    o, _, k, _, bo, _ = kernel.shape
    out = np.zeros(workloads.output_shape(layer, ENV), dtype=np.int64)
    for b in range(n * bn):
        for oc in range(o * bo):
            for y in range(layer.out_height):
                for x in range(layer.out_width):
                    acc = 0
                    for ic in range(c * bc):
                        for dy in range(k):
                            for dx in range(k):
                                iy, ix = y * layer.stride + dy - layer.pad, x * layer.stride + dx - layer.pad
                                if 0 <= iy < h and 0 <= ix < w:
                                    acc += int(data[b // bn, ic // bc, iy, ix, b % bn, ic % bc]) * \
                                        int(kernel[oc // bo, ic // bc, dy, dx, oc % bo, ic % bc])
                    out[b // bn, oc // bo, y, x, b % bn, oc % bo] = acc
    for step in layer.epilogue:
        if step[0] == "bias":
            out = out + bias.astype(np.int64)
        elif step[0] == "shr":
            out = out >> step[1]
        elif step[0] == "add":
            out = out + step[1]
        elif step[0] == "max":
            out = np.maximum(out, step[1])
        elif step[0] == "min":
            out = np.minimum(out, step[1])
        elif step[0] == "relu":
            out = np.maximum(out, 0)
        elif step[0] == "clip":
            out = np.clip(out, step[1], step[2])
    return ((out + 128) % 256 - 128).astype(np.int8)


@pytest.mark.parametrize("layer", [
    workloads.Conv2D(1, 5, 6, 16, 32, 3, 1, 1),
    workloads.Conv2D(1, 6, 6, 32, 16, 3, 2, 1, epilogue=(("bias",), ("add", 8), ("shr", 4), ("clip", 0, 127))),
    workloads.Conv2D(1, 6, 6, 16, 16, 1, 2, 0, epilogue=(("relu",),)),
])
def test_reference_equals_the_definition(layer):
    inputs = workloads.random_inputs(layer, ENV, seed=3)
    bias = inputs[2] if len(inputs) > 2 else None
    np.testing.assert_array_equal(workloads.reference(layer, *inputs), _naive_conv(layer, *inputs[:2], bias))


def test_static_check_agrees_with_the_compiler():
    """The fast check rejects exactly the knob sets the compiler would refuse (on a sample)."""
    import random

    layers = [workloads.Conv2D(1, 14, 14, 64, 64, 3, 1, 1), workloads.Conv2D(1, 14, 14, 64, 128, 1, 2, 0),
              workloads.Dense(1, 256, 512), workloads.Elementwise(1, 64, 14, 14, "add")]
    rng = random.Random(5)
    verdicts = {"rejected": 0, "built": 0}
    for layer in layers:
        space = workloads.knob_space(layer, ENV)
        for _ in range(40):
            knobs = {name: rng.choice(values) for name, values in space.items()}
            try:
                workloads.check_knobs(layer, ENV, knobs)
                static_ok = True
            except CompileError:
                static_ok = False
            try:
                workloads.build(layer, env=ENV, knobs=knobs)
                built = True
            except CompileError:
                built = False
            assert static_ok == built, f"{layer} {knobs}: static check {static_ok}, compiler {built}"
            verdicts["built" if built else "rejected"] += 1
    assert min(verdicts.values()) > 10

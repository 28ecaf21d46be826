"""The op library end to end: every knob set either computes the numpy answer or is refused with
CompileError (never a wrong answer, never another exception); ResNet-18 with TopHub knobs."""
import json
import random

import numpy as np
import pytest

import hwconfigs
import simulator
from compiler import workloads
from compiler.ir import CompileError
from tests.conftest import reference_file

ENV = hwconfigs.get_env()

LAYERS = [
    workloads.Conv2D(1, 8, 8, 32, 32, 3, 1, 1, epilogue=(("bias",), ("shr", 6), ("clip", 0, 127))),
    workloads.Conv2D(1, 8, 8, 32, 32, 1, 2, 0, epilogue=(("bias",), ("relu",), ("shr", 3), ("clip", -128, 127))),
    workloads.Conv2D(1, 6, 6, 16, 32, 3, 1, 1),
    workloads.Dense(1, 256, 256, epilogue=(("bias",), ("shr", 6), ("clip", 0, 127))),
    workloads.Dense(1, 256, 128, epilogue=()),
    workloads.Elementwise(1, 64, 14, 14, "add", epilogue=(("shr", 4), ("clip", 0, 127))),
    workloads.Elementwise(1, 32, 8, 8, "multiply", epilogue=(("shr", 20),)),
]


def _run(layer, env, knobs, seed=0):
    mod = workloads.build(layer, env=env, knobs=knobs)
    inputs = workloads.random_inputs(layer, env, seed, knobs)
    out = workloads.empty_output(layer, env)
    result = simulator.run(mod, *inputs, out)
    return mod, result, out, workloads.reference(layer, *inputs)


@pytest.mark.parametrize("layer", LAYERS, ids=[f"{type(l).__name__}{i}" for i, l in enumerate(LAYERS)])
def test_random_knob_sets_compute_the_answer_or_are_refused(layer):
    space = workloads.knob_space(layer, ENV)
    rng = random.Random(7)
    built = 0
    for _ in range(25):
        knobs = {name: rng.choice(values) for name, values in space.items()}
        try:
            _, _, out, expected = _run(layer, ENV, knobs, seed=rng.randrange(1000))
        except CompileError:
            continue
        np.testing.assert_array_equal(out, expected, err_msg=f"knobs {knobs}")
        built += 1
    assert built >= 5, "too few knob sets lowered for the test to mean anything"


def test_every_extra_knob_value_lowers_and_keeps_the_answer():
    """Each value of the knobs beyond upstream's, changed alone from a legal base point."""
    layer = LAYERS[0]
    base = {"tile_h": [2, 4], "tile_w": [1, 8], "tile_co": [2, 1], "oc_nthread": 2}
    for name, values in workloads.knob_space(layer, ENV).items():
        if name.startswith("tile_") or name.endswith("nthread"):
            continue
        for value in values:
            _, result, out, expected = _run(layer, ENV, {**base, name: value})
            np.testing.assert_array_equal(out, expected, err_msg=f"{name}={value}")


def test_int8_bias_moves_a_quarter_of_the_bytes_with_the_same_answer():
    layer = LAYERS[0]
    knobs = {"tile_h": [2, 4], "tile_w": [1, 8]}
    _, wide, _, _ = _run(layer, ENV, {**knobs, "bias_dtype": "int32"})
    mod, narrow, out, expected = _run(layer, ENV, {**knobs, "bias_dtype": "int8"})
    np.testing.assert_array_equal(out, expected)
    # fsim counts ACC_8BIT loads at the full accumulator element size (vta-spec §4)
    assert narrow.stats == wide.stats
    assert any(getattr(i, "memory_type", None) == 5 for i in mod.program.instructions)


def test_other_geometry_batch_2_block_8():
    env = hwconfigs.get_env(LOG_BATCH=1, LOG_BLOCK=3, LOG_WGT_BUFF_SIZE=16)
    for layer, knobs in [
        (workloads.Dense(4, 64, 64, epilogue=(("shr", 3), ("clip", 0, 127))), None),
        (workloads.Dense(4, 64, 64, epilogue=(("shr", 3),)), {"tile_b": [2, 1], "tile_co": [2, 4],
                                                              "gemm_order": "co_outer"}),
        (workloads.Dense(2, 64, 64, epilogue=(("relu",),)), {"tile_co": [2, 4], "gemm_order": "co_outer",
                                                             "oc_nthread": 2}),
        (workloads.Conv2D(2, 6, 6, 16, 16, 3, 1, 1), {"tile_h": [2, 3], "tile_w": [1, 6]}),
    ]:
        _, _, out, expected = _run(layer, env, knobs)
        np.testing.assert_array_equal(out, expected, err_msg=f"{layer} {knobs}")


def _tophub():
    ref = json.loads(reference_file("resnet18_pynq_1x16.json").read_text())
    return {entry["layer"]: entry["tophub_cfg"] for entry in ref["layers"]}


def test_resnet18_tophub_layers_build_and_count():
    """Count-only run of every layer; the GEMM count is fixed by the layer's arithmetic."""
    for name, layer in workloads.resnet18().items():
        mod = workloads.build(layer, env=ENV, knobs=_tophub()[name])
        stats = simulator.run(mod, count_only=True).stats
        per_gemm = env_macs = ENV.BATCH * ENV.BLOCK_IN * ENV.BLOCK_OUT
        assert stats["gemm_counter"] * per_gemm == layer.macs
        assert stats["out_store_nbytes"] == layer.out_channels * layer.out_height * layer.out_width
        alu_ops = sum(2 if step[0] == "clip" else 1 for step in layer.epilogue)
        assert stats["alu_counter"] == alu_ops * layer.out_channels // 16 * layer.out_height * layer.out_width
        assert stats["acc_load_nbytes"] == 64 * layer.out_channels // 16 * (
            (layer.out_height // _tophub()[name]["tile_h"][1]) * (layer.out_width // _tophub()[name]["tile_w"][1]))


@pytest.mark.parametrize("name", ["C4", "C7", "C10"])
def test_resnet18_small_layers_compute_the_answer(name):
    layer = workloads.resnet18()[name]
    for knobs in (_tophub()[name], None):
        if knobs is None and name != "C10":
            continue
        _, _, out, expected = _run(layer, ENV, knobs)
        np.testing.assert_array_equal(out, expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "C10", "C11"])
def test_resnet18_every_layer_tophub_and_fallback_compute_the_answer(name):
    layer = workloads.resnet18()[name]
    for knobs in (_tophub()[name], None):
        _, _, out, expected = _run(layer, ENV, knobs)
        np.testing.assert_array_equal(out, expected)


def test_resnet18_network_instances_and_totals():
    """The 27 offloaded ops of ResNet-18 with their own fused epilogues: the conv instances agree
    with resnet18()'s layers and counts, and the totals follow from the ops' arithmetic."""
    network = workloads.resnet18_network()
    layers = workloads.resnet18()
    convs = [layer for _, layer in network if isinstance(layer, workloads.Conv2D)]
    adds = [layer for _, layer in network if isinstance(layer, workloads.Elementwise)]
    assert len(convs) == sum(layer.count for layer in layers.values()) == 19 and len(adds) == 8
    for name, layer in layers.items():
        assert sum(conv.name == name for conv in convs) == layer.count
    total = dict.fromkeys(simulator.COUNTER_NAMES, 0)
    for _, layer in network:
        mod = workloads.build(layer, env=ENV, knobs=_tophub().get(layer.name))
        for key, value in simulator.run(mod, count_only=True).stats.items():
            total[key] += value
    per_network = {key: 0 for key in ("inp_load_nbytes", "wgt_load_nbytes", "gemm_counter")}
    for name, layer in layers.items():
        stats = simulator.run(workloads.build(layer, env=ENV, knobs=_tophub()[name]), count_only=True).stats
        for key in per_network:
            per_network[key] += stats[key] * layer.count
    assert {key: total[key] for key in per_network} == per_network

    def ops(layer):
        return sum(2 if step[0] == "clip" else 1 for step in layer.epilogue)

    elements = lambda layer: (layer.out_channels if isinstance(layer, workloads.Conv2D) else layer.channels) // 16 \
        * (layer.out_height if isinstance(layer, workloads.Conv2D) else layer.height) \
        * (layer.out_width if isinstance(layer, workloads.Conv2D) else layer.width)
    assert total["alu_counter"] == sum(elements(c) * ops(c) for c in convs) + sum(elements(a) * (1 + ops(a)) for a in adds)
    assert total["out_store_nbytes"] == 16 * sum(elements(layer) for _, layer in network)
    residual_operands = 2 * 64 * sum(elements(a) for a in adds)
    assert total["acc_load_nbytes"] > residual_operands      # plus the convs' bias tiles

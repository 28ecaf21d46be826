"""The cycle model against measurements on a Pynq-Z1 (reference/resnet18_pynq_1x16.json).

Tolerances (docs/timing.md): the whole network within ±5 %, the median layer within 5 %, every
layer within ±25 %. Two parameters were fitted on these figures (TIMING_DRAM_EFFICIENCY 0.5,
TIMING_DMA_LATENCY 24); the rest come from the hardware design.
"""
import pytest

import hwconfigs
from compiler import workloads
from simulator import run
from simulator.calibration import compare_resnet18
from tests.conftest import reference_file


def _tophub():
    import json

    return {e["layer"]: e["tophub_cfg"] for e in
            json.loads(reference_file("resnet18_pynq_1x16.json").read_text())["layers"]}


@pytest.fixture(scope="module")
def calibration():
    return compare_resnet18(reference_file("resnet18_pynq_1x16.json"), hwconfigs.get_env("pynq"))


def test_network_total_within_five_percent(calibration):
    assert abs(calibration.network_ratio - 1) <= 0.05, calibration.markdown()


def test_median_layer_error_at_most_five_percent(calibration):
    assert calibration.median_error <= 0.05, calibration.markdown()


def test_every_layer_within_twenty_five_percent(calibration):
    assert calibration.worst_error <= 0.25, calibration.markdown()


def _cycles(layer, knobs, env):
    return run(workloads.build(layer, env=env, knobs=knobs), count_only=True).cycles


@pytest.mark.parametrize("name", ["C2", "C5", "C8", "C11"])
def test_virtual_threads_pay_off_on_resnet18_layers(name):
    env = hwconfigs.get_env("pynq")
    tophub = _tophub()[name]
    layer = workloads.resnet18()[name]
    threaded = dict(tophub)
    single = {**tophub, "oc_nthread": 1, "h_nthread": 1}
    assert threaded.get("oc_nthread", 1) * threaded.get("h_nthread", 1) == 2
    assert _cycles(layer, threaded, env) < _cycles(layer, single, env)


def test_virtual_threads_pay_off_on_the_conv_tutorial_and_a_blocked_gemm():
    import compiler
    from examples import convolution_opt

    env = hwconfigs.get_env()
    cycles = {}
    for threads in (1, 2):
        t = convolution_opt.declare(env)
        s = convolution_opt.schedule(env, t, v_threads=threads, verbose=False)
        mod = compiler.build(s, [t["data"], t["kernel"], t["res"]], env=env, name="conv")
        cycles[threads] = run(mod, count_only=True).cycles
    assert cycles[2] < cycles[1]
    dense = workloads.Dense(1, 1024, 1024)   # the blocked-GEMM tutorial's shape
    base = {"tile_co": [16, 4], "tile_ci": [4, 16], "gemm_order": "co_outer"}
    assert _cycles(dense, {**base, "oc_nthread": 2}, env) < _cycles(dense, base, env)


def test_a_wider_bus_never_slows_a_layer():
    narrow = hwconfigs.get_env("pynq")
    wide = hwconfigs.get_env("pynq", TIMING_BUS_BYTES=16)
    for name, layer in workloads.resnet18().items():
        assert _cycles(layer, _tophub()[name], wide) <= _cycles(layer, _tophub()[name], narrow)

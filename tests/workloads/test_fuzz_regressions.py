"""Reproducers of issue #16 on the op library: epilogue constants are the ALU's 16-bit signed
immediate (refused outside it), references are exact for every width, knob misuse is named."""
from __future__ import annotations

import numpy as np
import pytest

import hwconfigs
import simulator
from compiler import CompileError, workloads

GEOMETRIES = {
    "1x16": {},
    "inp16": {"LOG_INP_WIDTH": 4, "LOG_WGT_WIDTH": 4},
    "acc16": {"LOG_ACC_WIDTH": 4, "LOG_ACC_BUFF_SIZE": 16},
    "2x8": {"LOG_BATCH": 1, "LOG_BLOCK": 3, "LOG_WGT_BUFF_SIZE": 16, "LOG_ACC_BUFF_SIZE": 15},
}


@pytest.mark.parametrize("epilogue", [(("max", 40000),), (("min", -32769),), (("add", 1 << 70),),
                                      (("clip", 0, 1 << 16),), (("shr", 32),), (("shr", -1),),
                                      (("add", True),), (("max", 2.0),), "shr", None])
@pytest.mark.parametrize("make", [lambda e: workloads.Dense(1, 16, 16, epilogue=e),
                                  lambda e: workloads.Conv2D(1, 4, 4, 16, 16, 3, epilogue=e),
                                  lambda e: workloads.Elementwise(1, 16, 2, 2, epilogue=e)])
def test_out_of_range_epilogue_constants_are_refused_at_construction(make, epilogue):
    with pytest.raises(CompileError):
        make(epilogue)


def test_extreme_legal_constants_are_accepted():
    workloads.Dense(1, 16, 16, epilogue=(("add", -32768), ("max", 32767), ("shr", 31), ("shr", 0),
                                         ("clip", -32768, 32767)))


def _full_run_matches(layer, env) -> bool:
    mod = workloads.build(layer, env=env)
    inputs = workloads.random_inputs(layer, env, seed=1)
    out = workloads.empty_output(layer, env)
    simulator.run(mod, *inputs, out)
    return bool(np.array_equal(out, workloads.reference(layer, *inputs, env=env)))


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_references_are_exact_for_every_width(geometry):
    env = hwconfigs.get_env(**GEOMETRIES[geometry])
    epilogue = (("add", 32767), ("shr", 3), ("max", -32768), ("min", 32767))
    b = env.BATCH
    assert _full_run_matches(workloads.Elementwise(b, 16, 2, 2, op="multiply", epilogue=epilogue), env)
    assert _full_run_matches(workloads.Elementwise(b, 16, 2, 2, op="add", epilogue=()), env)
    assert _full_run_matches(workloads.Dense(b, 32, 16, epilogue=(("shr", 1),)), env)
    assert _full_run_matches(workloads.Conv2D(b, 4, 4, 16, 16, 3, pad=1, epilogue=(("clip", -5, 300),)), env)


@pytest.mark.parametrize("knobs", [[["tile_co", [1, 1]]], {"tile_co"}, "tile_co", 5,
                                   {"tile_co": None}, {"tile_co": [1.0, 1]}, {"tile_co": [True, 1]},
                                   {1: 2}, {"oc_nthread": True}])
def test_knobs_that_are_not_a_mapping_of_knob_values_are_named_errors(knobs):
    env = hwconfigs.get_env()
    layer = workloads.Dense(1, 16, 16)
    with pytest.raises(CompileError):
        workloads.check_knobs(layer, env, knobs)
    with pytest.raises(CompileError):
        workloads.build(layer, env=env, knobs=knobs)

"""The board on loopback with the simulated device: outputs, counters and cycles equal
``simulator.run``'s (and the numpy reference) for conv, dense and elementwise layers under random
legal knobs, on a 1x16 and a 4x8 configuration."""
from __future__ import annotations

import random

import numpy as np
import pytest

import hwconfigs
import simulator
from compiler import workloads
from dse.board import BoardPool, BoardServer, SimDevice

TOKEN = "test-token-0123456789"

ENVS = {"1x16": hwconfigs.get_env(), "4x8": hwconfigs.get_env(LOG_BATCH=2, LOG_BLOCK=3)}


def _layers(env):
    batch = env.BATCH
    return {
        "conv": workloads.Conv2D(batch=batch, height=8, width=8, in_channels=2 * env.BLOCK_IN,
                                 out_channels=2 * env.BLOCK_OUT, kernel=3, stride=1, pad=1),
        "dense": workloads.Dense(batch=batch, in_features=4 * env.BLOCK_IN, out_features=2 * env.BLOCK_OUT),
        "add": workloads.Elementwise(batch=batch, channels=2 * env.BLOCK_OUT, height=4, width=4, op="add"),
    }


@pytest.fixture(scope="module")
def board():
    with BoardServer(SimDevice(), TOKEN, port=0).start() as server:
        yield server


CASES = [(env_name, kind, seed) for env_name in ENVS for kind in ("conv", "dense", "add") for seed in (0, 1)]


@pytest.mark.parametrize("env_name,kind,seed", CASES)
def test_board_run_equals_simulator_run(board, env_name, kind, seed):
    env = ENVS[env_name]
    layer = _layers(env)[kind]
    knobs = workloads.random_legal_knobs(layer, env, random.Random(seed), 1, max_tries=400)
    assert knobs, f"no legal knobs drawn for {layer}"
    module = workloads.build(layer, env=env, knobs=knobs[0])
    inputs = workloads.random_inputs(layer, env, seed=seed, knobs=knobs[0])
    local, remote = workloads.empty_output(layer, env), workloads.empty_output(layer, env)
    expected = simulator.run(module, *inputs, local)
    run = BoardPool([board.address], TOKEN).run_module(module, [*inputs, remote], timeout_s=120)
    np.testing.assert_array_equal(remote, local)
    np.testing.assert_array_equal(remote, workloads.reference(layer, *inputs, env=env))
    assert run.stats == expected.stats
    assert run.cycles == expected.cycles
    assert run.board == board.address and run.wall_s > 0 and run.attempts == 1


def test_sub_byte_buffers(board):
    """int4 data, weights and outputs travel packed two to a byte, and come back unpacked."""
    env = hwconfigs.get_env(LOG_INP_WIDTH=2, LOG_WGT_WIDTH=2, LOG_INP_BUFF_SIZE=14, LOG_WGT_BUFF_SIZE=16,
                            LOG_ACC_BUFF_SIZE=15)
    layer = _layers(env)["dense"]
    module = workloads.build(layer, env=env)
    assert {arg.dtype for arg in module.args} == {"int4"}
    inputs = workloads.random_inputs(layer, env, seed=2)
    local, remote = workloads.empty_output(layer, env), workloads.empty_output(layer, env)
    expected = simulator.run(module, *inputs, local)
    run = BoardPool([board.address], TOKEN).run_module(module, [*inputs, remote], timeout_s=60)
    np.testing.assert_array_equal(remote, workloads.reference(layer, *inputs, env=env))
    np.testing.assert_array_equal(remote, local)
    assert (run.stats, run.cycles) == (expected.stats, expected.cycles)


def test_a_module_of_two_programs(board):
    """Two synchronizes: the second program pops the token the first left, and its uops are staged
    again before it runs; counters and cycles sum over both, as in simulator.run."""
    from tests.compiler.test_runtime_module import _mmopt_module

    env = ENVS["1x16"]
    module = _mmopt_module(env, calls=2)
    assert len(module.programs) == 2
    rng = np.random.default_rng(4)
    args = [rng.integers(-128, 128, arg.shape, dtype=np.int8) for arg in module.args]
    local = args[-1].copy()
    expected = simulator.run(module, *args[:-1], local)
    run = BoardPool([board.address], TOKEN).run_module(module, args, timeout_s=60)
    np.testing.assert_array_equal(args[-1], local)
    assert (run.stats, run.cycles) == (expected.stats, expected.cycles)

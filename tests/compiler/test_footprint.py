"""``Module.footprint()``: the on-chip bytes a module needs, read off its instructions. A module
builds unchanged on buffers of exactly its footprint (rounded up to a power of two), and the
compiler refuses the same knobs one power of two below, for every buffer it checks."""
import math
import random

import pytest

import hwconfigs
from compiler import workloads
from compiler.ir import CompileError

ENV = hwconfigs.get_env()

LAYERS = [
    workloads.Conv2D(1, 8, 8, 32, 32, 3, 1, 1, epilogue=workloads.RESNET18_EPILOGUE),
    workloads.Conv2D(1, 8, 8, 32, 64, 1, 2, 0, epilogue=(("bias",), ("relu",), ("shr", 3))),
    workloads.Conv2D(1, 9, 9, 32, 32, 3, 2, 1),
    workloads.Dense(1, 256, 256, epilogue=(("bias",), ("shr", 6), ("clip", 0, 127))),
    workloads.Elementwise(1, 64, 14, 14, "add", epilogue=(("shr", 4), ("clip", 0, 127))),
]
LOG_KEY = {"inp": "LOG_INP_BUFF_SIZE", "wgt": "LOG_WGT_BUFF_SIZE", "acc": "LOG_ACC_BUFF_SIZE"}


def test_footprint_of_a_known_stream():
    """Two h-threads of a 4x8 tile of a padded 3x3 conv with a bias: 60 input rows, 18 weight
    blocks and 64 + 2 accumulator elements per thread, 66 uops in all."""
    layer = LAYERS[0]
    knobs = {"tile_h": [2, 4], "tile_w": [1, 8], "tile_co": [1, 2], "tile_ci": [2, 1], "h_nthread": 2}
    fp = workloads.build(layer, env=ENV, knobs=knobs).footprint()
    assert fp == {"inp": 2 * 60 * ENV.INP_ELEM_BYTES, "wgt": 2 * 18 * ENV.WGT_ELEM_BYTES,
                  "acc": 2 * 66 * ENV.ACC_ELEM_BYTES, "uop": 66 * ENV.UOP_ELEM_BYTES,
                  "out": 130 * ENV.OUT_ELEM_BYTES}


@pytest.mark.parametrize("layer", LAYERS, ids=[f"{type(l).__name__}{i}" for i, l in enumerate(LAYERS)])
def test_module_fits_its_footprint_and_not_one_size_below(layer):
    rng = random.Random(11)
    checked = 0
    for knobs in workloads.random_legal_knobs(layer, ENV, rng, 4, max_tries=200):
        mod = workloads.build(layer, env=ENV, knobs=knobs)
        fp = mod.footprint()
        assert fp["acc"] > 0 and fp["uop"] > 0
        for buf, key in LOG_KEY.items():
            if not fp[buf]:
                continue
            log = max(math.ceil(math.log2(fp[buf])), 0)
            fits = hwconfigs.get_env("default", **{key: log})
            small = workloads.build(layer, env=fits, knobs=knobs)
            assert small.footprint() == fp, (buf, knobs)
            try:
                below = hwconfigs.get_env("default", **{key: log - 1})
            except hwconfigs.ConfigError:   # one tile is the smallest buffer a config may have
                continue
            with pytest.raises(CompileError):
                workloads.build(layer, env=below, knobs=knobs)
            checked += 1
    assert checked >= 4

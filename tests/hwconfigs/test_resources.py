"""The FPGA resource model against the published placed build, and its binding rules."""
import itertools
import json
import math
from pathlib import Path

import pytest

import hwconfigs
from hwconfigs import _resources as R

BUILDS = json.loads((Path(__file__).resolve().parents[1] / "reference" / "vivado_builds.json").read_text())["builds"]
PUBLISHED = {"bram": "bram_tiles", "lut": "lut", "ff": "ff", "dsp": "dsp"}


def _build_config(build):
    return hwconfigs.HwConfig.from_dict(build["config"])


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: f"{b['part']}")
def test_published_builds_within_five_percent(build):
    cfg = _build_config(build)
    assert hwconfigs.capacity_of(cfg).part == build["part"]
    est = hwconfigs.estimate_resources(cfg)
    used = build["utilisation"]
    errors = {k: (getattr(est, k) - used[v]) / used[v] for k, v in PUBLISHED.items()}
    assert all(abs(e) <= 0.05 for e in errors.values()), errors
    # the stated uncertainty covers what the build shows
    for key, col in PUBLISHED.items():
        low, high = est.band(key)
        assert low <= used[col] <= high, (key, low, used[col], high)
    if "lut_as_memory" in used:
        assert abs(est.lut_memory - used["lut_as_memory"]) <= est.uncertainty["lut_memory"] * used["lut_as_memory"]
    assert est.lut == est.lut_logic + est.lut_memory
    assert est.bram == est.ramb36 + est.ramb18 / 2


def test_default_memories_follow_the_binding_rules():
    est = hwconfigs.estimate_resources(hwconfigs.get_env("pynq"))
    mem = {m.name: m for m in est.srams}
    # pkg_config banking: the 2048-bit weight row is two 1024-bit blk_mem_gen banks
    assert (mem["wgt"].banks, mem["wgt"].width_bits, mem["wgt"].depth) == (2, 1024, 1024)
    assert (mem["wgt"].ramb36, mem["wgt"].ramb18) == (29, 0)             # 29 × 36 b × 1024 per bank
    assert mem["inp"].ramb36 == mem["out"].ramb36 == 8                  # 8 × 18 b × 2048
    assert mem["uop"].ramb36 == 8                                       # 4 b × 8192 words per RAMB36
    # acc: 512-bit words written in 64-bit AXI columns, each 4 × 16 data bits (no parity)
    assert mem["acc"].ramb36 == 32 and mem["acc"].ramb18 == 0
    assert (est.ramb36, est.ramb18) == (114, 0)
    queues = [m for m in est.srams if m.name.endswith("_queue")]
    assert len(queues) == 7 and all(m.kind == "srl" and m.bram_tiles == 0 for m in queues)
    assert sum(m.luts for m in queues) == 3 * 64 + 4 * 4 == est.breakdown["lut"]["queues (SRL)"]
    assert est.uram == 0
    # upstream's block design: 512/1024-deep FIFOs in block RAM
    upstream = hwconfigs.estimate_resources(hwconfigs.get_env("pynq"), queues="upstream")
    assert upstream.bram == est.bram + 3 * 2 + 4 * 0.5 and upstream.lut == est.lut - 208
    with pytest.raises(ValueError, match="queues = 'deep' is not one of shallow, upstream"):
        hwconfigs.estimate_resources(hwconfigs.get_env("pynq"), queues="deep")


def test_tiling_uses_parity_bits_only_without_byte_columns():
    assert R.block_ram_tiling(36, 1024) == (1, 0)
    assert R.block_ram_tiling(36, 1024, parity=False) == (2, 0)         # 32 + 4 more bits
    assert R.block_ram_tiling(72, 512, sdp=True) == (1, 0)
    assert R.block_ram_tiling(72, 512) == (2, 0)                        # true dual port: 36 b at most
    assert R.block_ram_tiling(8, 1024) == (0, 1)                        # fits one RAMB18
    assert R.block_ram_tiling(128, 2048) == (8, 0)                      # one aspect, replicated
    assert R.block_ram_tiling(128, 2048, uniform=False) == (7, 1)       # the arithmetic minimum
    assert R.bram18_for(1, 32768) == 2


def test_multiplier_binding_follows_clock_and_part():
    pynq = hwconfigs.estimate_resources(hwconfigs.get_env("pynq"))
    # 7 ns HLS target: every multiply asks for a DSP; the xc7z020 has 220, the rest go to LUTs
    assert pynq.multipliers.hls_on_dsp == 256 and pynq.dsp_demand == 256 + R.INDEX_DSPS
    assert pynq.dsp == 220 and pynq.multipliers.spilled == pynq.dsp_demand - 220
    # 2 ns HLS target (ultra96): HLS pairs the products, half in DSPs, half in LUTs
    u96 = hwconfigs.estimate_resources(hwconfigs.get_env("ultra96"))
    assert u96.multipliers.hls_on_dsp == 128 and u96.multipliers.on_lut == 128 and u96.dsp == 128 + R.INDEX_DSPS
    # the same rule from a faster clock asked of the Pynq
    fast = hwconfigs.estimate_resources(hwconfigs.get_env("pynq", TIMING_CLOCK_MHZ=200))
    assert fast.multipliers.hls_on_dsp == 128 and fast.dsp < pynq.dsp
    # the DSP never exceeds the part; what does not fit costs LUTs
    big = hwconfigs.estimate_resources(hwconfigs.get_env("pynq", LOG_BLOCK=5, LOG_WGT_BUFF_SIZE=18))
    assert big.dsp == 220 and big.dsp_demand > pynq.dsp_demand
    assert big.multipliers.on_lut == 1024 - (220 - R.INDEX_DSPS)


def test_bigger_cores_and_buffers_cost_more():
    base = hwconfigs.estimate_resources(hwconfigs.get_env("pynq"))
    block5 = hwconfigs.estimate_resources(hwconfigs.get_env("pynq", LOG_BLOCK=5))
    assert block5.dsp_demand > base.dsp_demand and block5.lut > base.lut and block5.ff > base.ff
    batch2 = hwconfigs.estimate_resources(hwconfigs.get_env("pynq", LOG_BATCH=1))
    assert batch2.dsp_demand == 2 * 256 + R.INDEX_DSPS and batch2.lut > base.lut
    small = dict(LOG_INP_BUFF_SIZE=14, LOG_WGT_BUFF_SIZE=17, LOG_ACC_BUFF_SIZE=16)
    for key in small:
        smaller = hwconfigs.estimate_resources(hwconfigs.get_env("pynq", **{key: small[key]}))
        assert smaller.bram <= base.bram, key
        assert smaller.dsp == base.dsp and smaller.lut == base.lut
    assert hwconfigs.estimate_resources(hwconfigs.get_env("pynq", LOG_ACC_BUFF_SIZE=16)).bram < base.bram
    # a true-dual-port weight bank is at most 36 b wide per RAMB36: 512 rows cost what 1024 do
    assert hwconfigs.estimate_resources(hwconfigs.get_env("pynq", LOG_WGT_BUFF_SIZE=17)).bram == base.bram
    # the uop buffer alone: 8 → 4 RAMB36
    assert hwconfigs.estimate_resources(hwconfigs.get_env("pynq", LOG_UOP_BUFF_SIZE=14)).bram == base.bram - 4
    # a wider AXI bus costs shell LUTs, FFs and FIFO LUTRAM
    wide = hwconfigs.estimate_resources(hwconfigs.get_env("pynq", TIMING_BUS_BYTES=16))
    assert wide.lut_memory > base.lut_memory and wide.lut_logic > base.lut_logic and wide.ff > base.ff


def test_tiny_hls_arrays_are_lutram():
    est = hwconfigs.estimate_resources(hwconfigs.get_env("pynq", LOG_UOP_BUFF_SIZE=7))
    uop = {m.name: m for m in est.srams}["uop"]
    assert uop.depth == 32 and uop.kind == "lutram" and uop.luts > 0 and uop.bram_tiles == 0


def test_uram_on_ultrascale_plus():
    zcu = hwconfigs.get_env("zcu104")
    plain = hwconfigs.estimate_resources(zcu)
    assert plain.uram == 0                                              # upstream default: no URAM
    uram = hwconfigs.estimate_resources(zcu, wgt_uram_banks="all")
    assert uram.uram == 2 * 15 and uram.bram == plain.bram - 58          # 1024 b / 72 b per URAM288
    one = hwconfigs.estimate_resources(zcu, wgt_uram_banks=1)
    assert one.uram == 15 and one.bram == plain.bram - 29
    assert uram.uram <= hwconfigs.capacity_of(zcu).uram
    # the ZU3EG has no URAM: the request is moot
    assert hwconfigs.estimate_resources(hwconfigs.get_env("ultra96"), wgt_uram_banks="all").uram == 0


@pytest.mark.parametrize("preset", hwconfigs.preset_names())
def test_every_preset_has_an_estimate_within_its_part(preset):
    env = hwconfigs.get_env(preset)
    est = hwconfigs.estimate_resources(env)
    cap = hwconfigs.capacity_of(env)
    assert est.part == cap.part
    for key in ("bram", "dsp", "lut", "ff"):
        assert 0 < getattr(est, key) <= getattr(cap, key), key
        low, high = est.band(key)
        assert low < getattr(est, key) < high
    assert set(est.as_row()) >= {"bram", "dsp", "lut", "ff", "uram"}


def test_every_legal_geometry_has_a_finite_estimate():
    seen = 0
    for lw, lb, blk, acc, inp, wgt in itertools.product((2, 3, 4), (0, 1), (3, 4, 5), (15, 17), (13, 15), (16, 18)):
        try:
            cfg = hwconfigs.HwConfig(LOG_INP_WIDTH=lw, LOG_WGT_WIDTH=lw, LOG_BATCH=lb, LOG_BLOCK=blk,
                                     LOG_ACC_BUFF_SIZE=acc, LOG_INP_BUFF_SIZE=inp, LOG_WGT_BUFF_SIZE=wgt)
        except hwconfigs.ConfigError:
            continue
        seen += 1
        for target in ("pynq", "ultra96", "zcu104", "de10nano"):
            est = hwconfigs.estimate_resources(cfg.replace(TARGET=target))
            assert all(math.isfinite(v) and v >= 0 for v in est.as_row().values()), (cfg, target)
            assert est.bram > 0 and est.lut > 0 and est.ff > 0
    assert seen > 20


def test_four_bit_operands_are_lut_multiplies():
    # half the bytes at 4 bits keeps upstream's depths (the default sizes would overflow the GEMM word)
    env = hwconfigs.get_env("pynq", LOG_INP_WIDTH=2, LOG_WGT_WIDTH=2, LOG_INP_BUFF_SIZE=14, LOG_WGT_BUFF_SIZE=17)
    assert env.inp_dtype == "int4" and env.bitstream == "1x16_i4w4a32_15_14_17_17"
    assert (env.INP_DEPTH, env.WGT_DEPTH) == (2048, 1024)
    est = hwconfigs.estimate_resources(env)
    base = hwconfigs.estimate_resources(hwconfigs.get_env("pynq"))
    assert est.multipliers.hls_on_dsp == 0 and est.dsp == R.INDEX_DSPS
    assert est.multipliers.luts_per_mul == pytest.approx(R.LUT_PER_MUL_BIT2 * 16)
    assert est.lut < base.lut + 256 * est.multipliers.luts_per_mul
    assert est.bram < base.bram and {m.name: m.banks for m in est.srams}["wgt"] == 1


def test_widths_below_four_bits_are_refused():
    with pytest.raises(hwconfigs.ConfigError, match=r"LOG_INP_WIDTH = 1 is out of range \[2, 5\]"):
        hwconfigs.HwConfig(LOG_INP_WIDTH=1)
    # 4-bit at the default byte sizes doubles the depths: the GEMM word names the keys to shrink
    with pytest.raises(hwconfigs.ConfigError, match="LOG_WGT_BUFF_SIZE <= 16"):
        hwconfigs.HwConfig(LOG_INP_WIDTH=2, LOG_WGT_WIDTH=2)

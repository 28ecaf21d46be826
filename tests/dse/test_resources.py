"""FPGA resource estimates: the HLS banking rule of vta-spec §1.3 and the BRAM18 tiling."""
import hwconfigs
from hwconfigs._resources import bram18_for


def test_default_banks_follow_the_spec_example():
    res = hwconfigs.estimate_resources(hwconfigs.get_env())
    banks = {s.name: (s.banks, s.width_bits, s.depth) for s in res.srams}
    # spec §1.3: inp 1 bank × 128 b × 2048; wgt 2 banks × 1024 b × 1024; out 1 × 128 b × 2048
    assert banks["inp"] == (1, 128, 2048)
    assert banks["wgt"] == (2, 1024, 1024)
    assert banks["out"] == (1, 128, 2048)
    assert banks["acc"] == (1, 512, 2048) and banks["uop"] == (1, 32, 8192)


def test_bram18_tiling_picks_the_cheapest_aspect():
    assert bram18_for(36, 512) == 1
    assert bram18_for(128, 2048) == 15     # 15 × (9 b × 2048) beats 16 × (36 b × 512)
    assert bram18_for(1024, 1024) == 57    # 57 × (18 b × 1024)
    assert bram18_for(8, 16) == 1


def test_bigger_buffers_and_cores_cost_more():
    base = hwconfigs.estimate_resources(hwconfigs.get_env())
    assert base.bram == sum(s.banks * s.bram18 for s in base.srams) / 2 == 114    # the queues are shift registers
    wider = hwconfigs.estimate_resources(hwconfigs.get_env(LOG_INP_BUFF_SIZE=16, LOG_ACC_BUFF_SIZE=16))
    assert wider.bram > hwconfigs.estimate_resources(hwconfigs.get_env(LOG_ACC_BUFF_SIZE=16)).bram
    assert wider.dsp == base.dsp
    assert hwconfigs.estimate_resources(hwconfigs.get_env(LOG_BATCH=1)).dsp_demand == 2 * 256 + 2
    assert base.dsp == 220      # 256 int8 multiplies + 2 index DSPs asked for, the xc7z020's 220 placed
    cap = hwconfigs.capacity_of(hwconfigs.get_env("pynq"))
    assert cap.bram == 140 and base.bram <= cap.bram

"""FPGA resource estimates of one VTA build: block RAM, DSP slices and LUTs.

BRAM follows upstream's HLS banking rule (vta-spec §1.3, ``pkg_config.py``): every on-chip
buffer is an array of ``elem_bits``-wide elements split into ``ceil(elem_bits / 1024)`` banks
of ``min(elem_bits, 1024)`` bits by ``size·8 / elem_bits`` words. Vivado then tiles each bank
with 18 Kb primitives in the aspect ratio that needs the fewest (simple dual port, widths 1, 2,
4, 9, 18, 36). Assumptions: the rule is applied to the uop and accumulator buffers too (the
spec lists it for inp/wgt/out); no bank is small enough to be moved to LUTRAM; BRAM36 counts
are BRAM18 counts / 2, as Vivado's utilization report prints them.

DSP and LUT figures are a rough model of the GEMM core, not a synthesis result:
- one multiplier per MAC (BATCH·BLOCK_IN·BLOCK_OUT of them); operands of at most 8 bits pack
  two multiplies per DSP48 (Xilinx WP486), wider operands up to 18×25 bits take one DSP48 and
  anything wider four;
- the adder tree (BLOCK_IN − 1 adders per output lane, ACC_WIDTH bits) and the ALU lanes
  (BATCH·BLOCK_OUT lanes, ~4 LUTs per bit for min/max/add/shift) are LUTs;
- a fixed 9000 LUTs for fetch/load/store, the AXI masters and the instruction queues.
The figures rank configurations; absolute accuracy needs a calibration against synthesis runs.
"""
from __future__ import annotations

import dataclasses
import math

from ._config import HwConfig

MAX_PORT_BITS = 1024                                     # pkg_config: widest HLS port
BRAM18_ASPECTS = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))
FIXED_LUTS = 9000
ALU_LUTS_PER_BIT = 4


@dataclasses.dataclass(frozen=True)
class Capacity:
    """What one FPGA part offers (BRAM in 36 Kb blocks or equivalents)."""

    part: str
    bram: float
    dsp: int
    lut: int


# Datasheet figures; the Cyclone V row converts 553 M10K blocks to 36 Kb equivalents.
CAPACITIES = {
    "xc7z020clg484-1": Capacity("xc7z020clg484-1", 140, 220, 53200),
    "xczu3eg-sbva484-1-e": Capacity("xczu3eg-sbva484-1-e", 216, 360, 70560),
    "xczu7ev-ffvc1156-2-e": Capacity("xczu7ev-ffvc1156-2-e", 312, 1728, 230400),
    "5CSEBA6U23I7": Capacity("5CSEBA6U23I7", 153.6, 112, 41910),
}


@dataclasses.dataclass(frozen=True)
class SramBank:
    name: str
    banks: int
    width_bits: int
    depth: int
    bram18: int          # per bank


@dataclasses.dataclass(frozen=True)
class Resources:
    """Estimated utilization of one configuration; ``srams`` details the BRAM figure."""

    bram: float          # BRAM36 blocks (halves are one BRAM18)
    dsp: int
    lut: int
    srams: tuple

    def as_row(self) -> dict:
        return {"bram": self.bram, "dsp": self.dsp, "lut": self.lut}


def bram18_for(width_bits: int, depth: int) -> int:
    """Fewest 18 Kb primitives that hold a ``width_bits`` × ``depth`` memory."""
    return min(math.ceil(width_bits / w) * math.ceil(depth / d) for w, d in BRAM18_ASPECTS)


def _bank(name: str, elem_bits: int, size_bytes: int) -> SramBank:
    banks = math.ceil(elem_bits / MAX_PORT_BITS)
    width = min(elem_bits, MAX_PORT_BITS)
    depth = max(1, size_bytes * 8 // elem_bits)
    return SramBank(name, banks, width, depth, bram18_for(width, depth))


def _multiplier_dsps(a_bits: int, b_bits: int) -> float:
    if a_bits <= 8 and b_bits <= 8:
        return 0.5
    if min(a_bits, b_bits) <= 18 and max(a_bits, b_bits) <= 25:
        return 1.0
    return 4.0


def estimate_resources(config) -> Resources:
    """Resource estimate for a :class:`HwConfig` or an ``Env`` (anything with ``.cfg``)."""
    cfg: HwConfig = getattr(config, "cfg", config)
    batch, block = 1 << cfg.LOG_BATCH, 1 << cfg.LOG_BLOCK
    inp_w, wgt_w, acc_w = 1 << cfg.LOG_INP_WIDTH, 1 << cfg.LOG_WGT_WIDTH, 1 << cfg.LOG_ACC_WIDTH
    out_w = inp_w
    out_size = (1 << cfg.LOG_ACC_BUFF_SIZE) * out_w // acc_w
    srams = (
        _bank("uop", 32, 1 << cfg.LOG_UOP_BUFF_SIZE),
        _bank("inp", batch * block * inp_w, 1 << cfg.LOG_INP_BUFF_SIZE),
        _bank("wgt", block * block * wgt_w, 1 << cfg.LOG_WGT_BUFF_SIZE),
        _bank("acc", batch * block * acc_w, 1 << cfg.LOG_ACC_BUFF_SIZE),
        _bank("out", batch * block * out_w, max(1, out_size)),
    )
    bram18 = sum(s.banks * s.bram18 for s in srams)
    macs = batch * block * block
    dsp = math.ceil(macs * _multiplier_dsps(inp_w, wgt_w))
    lanes = batch * block
    lut = FIXED_LUTS + lanes * (block - 1) * acc_w + lanes * acc_w * ALU_LUTS_PER_BIT
    return Resources(bram=bram18 / 2, dsp=dsp, lut=lut, srams=srams)


def capacity_of(config) -> Capacity:
    """The capacity of the FPGA part the config's TARGET builds for."""
    from ._env import FPGA_TARGETS

    cfg: HwConfig = getattr(config, "cfg", config)
    return CAPACITIES[FPGA_TARGETS[cfg.TARGET].part]

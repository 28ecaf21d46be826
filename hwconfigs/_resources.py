"""FPGA resources of one VTA build: BRAM, URAM, DSP, LUT (logic and memory) and FF.

A model of upstream's HLS design (``hardware/xilinx``) as Vivado builds it, in three parts:

* **Memories** are bound by rules (which buffer goes to BRAM, URAM, LUTRAM or shift registers,
  and how its words are cut into primitives) that follow from how upstream declares them; no
  constant is fitted, though the choice among candidate rules follows the published build's
  primitive counts.
* **Multipliers** go to DSPs or LUTs by a rule of the HLS clock target, the operand widths and
  the part's DSP count; the adder trees, accumulators and ALU lanes of the compute block are
  counted bit by bit.
* **The shell** (fetch/load/store control, the five AXI masters, the interconnect) is a fixed
  part plus a part per AXI data bit and master; these few constants are the only figures
  calibrated on a placed build.

``docs/resources.md`` gives every rule and constant with its source and the published build it
is checked against; every estimate carries a relative uncertainty per resource
(:attr:`Resources.uncertainty`, :meth:`Resources.band`).
"""
from __future__ import annotations

import dataclasses
import functools
import math

from ._config import HwConfig

# ---- parts -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Capacity:
    """What one FPGA part offers. ``bram`` counts 36 Kb tiles (a RAMB36 or two RAMB18), or the
    36 Kb equivalent of an Intel part's M10K blocks; ``lut`` counts 6-input LUTs (ALMs on Intel)."""

    part: str
    bram: float
    dsp: int
    lut: int
    ff: int = 0
    uram: int = 0
    family: str = "7series"          # "7series", "ultrascale+" or "cyclonev"


# Datasheet figures (Xilinx DS190 Zynq-7000, DS891 Zynq UltraScale+, Intel Cyclone V device
# overview: 553 M10K blocks = 153.6 × 36 Kb, 112 variable-precision DSP blocks, 41,910 ALMs
# and 166,036 registers).
CAPACITIES = {
    "xc7z020clg484-1": Capacity("xc7z020clg484-1", 140, 220, 53200, 106400, 0, "7series"),
    "xczu3eg-sbva484-1-e": Capacity("xczu3eg-sbva484-1-e", 216, 360, 70560, 141120, 0, "ultrascale+"),
    "xczu7ev-ffvc1156-2-e": Capacity("xczu7ev-ffvc1156-2-e", 312, 1728, 230400, 460800, 96, "ultrascale+"),
    "5CSEBA6U23I7": Capacity("5CSEBA6U23I7", 153.6, 112, 41910, 166036, 0, "cyclonev"),
}

# ---- memory primitives --------------------------------------------------------------------------

MAX_PORT_BITS = 1024                 # pkg_config.py max_bus_width: the widest HLS memory port
# (width, depth) aspects of one 36 Kb block RAM and of one 18 Kb half. With parity the widths
# 9/18/36/72 hold data; a memory written in byte columns (byte write enables) can only use the
# 8/16/32/64 data bits (UG473 ch. 1; UG901 "byte write enable"). 72/64-bit aspects exist only
# in simple dual port mode (one write and one read port).
_RAMB36 = ((1, 32768), (2, 16384), (4, 8192), (9, 4096), (18, 2048), (36, 1024), (72, 512))
_RAMB18 = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))
BRAM18_ASPECTS = _RAMB18             # kept for callers of the old module
URAM_ASPECT = (72, 4096)             # URAM288 (UG573): one fixed aspect
M10K_ASPECTS = ((1, 8192), (2, 4096), (4, 2048), (8, 1024), (16, 512), (32, 256))   # data widths
LUTRAM_MAX_DEPTH = 64                # an HLS array this shallow is a LUTRAM, not a block RAM


def _data_only(aspects):
    return tuple(((w // 9) * 8 if w >= 9 else w, d) for w, d in aspects)


def _widest(aspects, depth: int) -> int:
    fitting = [w for w, d in aspects if d >= depth]
    return max(fitting) if fitting else 0


@functools.lru_cache(maxsize=4096)
def block_ram_tiling(width: int, depth: int, *, parity: bool = True, sdp: bool = False,
                     uniform: bool = True) -> tuple[int, int]:
    """(RAMB36, RAMB18) primitives of a ``width``-bit × ``depth`` memory.

    ``uniform`` (what Vivado's block memory generator and RAM inference build): one RAMB18 if
    the whole memory fits in one, otherwise one RAMB36 aspect replicated over width and depth,
    the aspect that needs the fewest. Otherwise the arithmetic minimum: whole RAMB36 columns
    and the leftover bits in RAMB18s when that takes fewer 18 Kb halves."""
    r36 = [a for a in (_RAMB36 if sdp else _RAMB36[:-1])]
    r18 = [a for a in (_RAMB18 if sdp else _RAMB18[:-1])]
    if not parity:
        r36, r18 = _data_only(r36), _data_only(r18)
    if uniform:
        if any(w >= width and d >= depth for w, d in r18):
            return 0, 1
        return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in r36), 0
    best = None
    for w36, d36 in r36:
        rows = math.ceil(depth / d36)
        full, rest = divmod(width, w36)
        n36, n18 = full, 0
        if rest:
            w18 = _widest(r18, min(depth, d36))
            if w18 and math.ceil(rest / w18) < 2:
                n18 = math.ceil(rest / w18)
            else:
                n36 += 1
        cand = (rows * (2 * n36 + n18), rows * (n36 + n18), rows * n36, rows * n18)
        best = min(best, cand) if best else cand
    for w18, d18 in r18:
        n18 = math.ceil(width / w18) * math.ceil(depth / d18)
        best = min(best, (n18, n18, 0, n18))
    return best[2], best[3]


def bram18_for(width_bits: int, depth: int, *, sdp: bool = True) -> int:
    """Fewest 18 Kb halves that hold a ``width_bits`` × ``depth`` memory (parity bits used)."""
    n36, n18 = block_ram_tiling(width_bits, depth, sdp=sdp, uniform=False)
    return 2 * n36 + n18


# ---- memories ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Memory:
    """One on-chip memory of the build and what it is made of (per bank)."""

    name: str
    banks: int
    width_bits: int
    depth: int
    kind: str            # "bram", "uram", "lutram", "srl" or "m10k"
    rule: str            # why it is bound the way it is
    ramb36: int = 0
    ramb18: int = 0
    uram: int = 0
    luts: int = 0
    m10k: int = 0

    @property
    def bram18(self) -> int:
        """18 Kb halves per bank (a RAMB36 is two)."""
        return 2 * self.ramb36 + self.ramb18

    @property
    def bram_tiles(self) -> float:
        return self.banks * (self.ramb36 + self.ramb18 / 2 + self.m10k * 10 / 36)


SramBank = Memory        # the old name


def _bram(name, banks, width, depth, rule, *, parity=True, sdp=False, columns=1) -> Memory:
    col = width // columns
    n36, n18 = block_ram_tiling(col, depth, parity=parity, sdp=sdp)
    return Memory(name, banks, width, depth, "bram", rule, ramb36=n36 * columns, ramb18=n18 * columns)


def _lutram(name, banks, width, depth, rule) -> Memory:
    # RAM64M: 4 LUTs hold 3 bits × 64 words with one write and three read ports (UG474).
    return Memory(name, banks, width, depth, "lutram", rule,
                  luts=4 * math.ceil(width / 3) * math.ceil(depth / 64))


def _uram(name, banks, width, depth, rule) -> Memory:
    w, d = URAM_ASPECT
    return Memory(name, banks, width, depth, "uram", rule, uram=math.ceil(width / w) * math.ceil(depth / d))


def _m10k(name, banks, width, depth, rule) -> Memory:
    n = min(math.ceil(width / w) * math.ceil(depth / d) for w, d in M10K_ASPECTS)
    return Memory(name, banks, width, depth, "m10k", rule, m10k=n)


@dataclasses.dataclass(frozen=True)
class _Geometry:
    batch: int
    block: int
    inp_w: int
    wgt_w: int
    acc_w: int
    bus_bits: int
    period_ns: float
    part: Capacity

    @property
    def out_w(self) -> int:
        return self.inp_w

    @property
    def lanes(self) -> int:                  # output lanes of one GEMM/ALU step: BATCH·BLOCK_OUT
        return self.batch * self.block

    @property
    def macs(self) -> int:
        return self.batch * self.block * self.block


COMMAND_QUEUES = ("load_queue", "gemm_queue", "store_queue")
DEPENDENCY_QUEUES = ("l2g_queue", "g2l_queue", "g2s_queue", "s2g_queue")
QUEUE_CHOICES = ("shallow", "upstream")
SHALLOW_QUEUE_DEPTH = 16


def _shallow_queues() -> list[Memory]:
    """Shallow FIFOs in shift-register LUTs (SRL16E, two per LUT), as the published build has."""
    return [Memory(q, 1, width, SHALLOW_QUEUE_DEPTH, "srl", "shallow FIFO in SRL16E",
                   luts=math.ceil(width * math.ceil(SHALLOW_QUEUE_DEPTH / 16) / 2))
            for q, width in [(q, 128) for q in COMMAND_QUEUES] + [(q, 8) for q in DEPENDENCY_QUEUES]]


def _memories(cfg: HwConfig, g: _Geometry, wgt_uram_banks, queues: str) -> tuple[Memory, ...]:
    size = {"uop": 1 << cfg.LOG_UOP_BUFF_SIZE, "inp": 1 << cfg.LOG_INP_BUFF_SIZE,
            "wgt": 1 << cfg.LOG_WGT_BUFF_SIZE, "acc": 1 << cfg.LOG_ACC_BUFF_SIZE}
    size["out"] = max(1, size["acc"] * g.out_w // g.acc_w)
    elem = {"uop": 32, "inp": g.batch * g.block * g.inp_w, "wgt": g.block * g.block * g.wgt_w,
            "acc": g.lanes * g.acc_w, "out": g.lanes * g.out_w}
    if g.part.family == "cyclonev":
        mems = [_m10k(n, math.ceil(elem[n] / MAX_PORT_BITS), min(elem[n], MAX_PORT_BITS),
                      max(1, size[n] * 8 // elem[n]), "M10K, fewest blocks") for n in elem]
        if queues == "upstream":
            mems += [_m10k(q, 1, 128, 512, "command FIFO") for q in COMMAND_QUEUES]
            mems += [_m10k(q, 1, 8, 1024, "dependency FIFO") for q in DEPENDENCY_QUEUES]
        else:
            mems += _shallow_queues()
        return tuple(mems)

    mems = []
    # Compute-internal HLS arrays: the uop buffer, and the accumulator (ARRAY_RESHAPE complete
    # dim=2: one element-wide word). The acc DMA writes it one AXI word at a time, so its write
    # enables cut it into bus-wide columns, each tiled with data-only widths.
    for name, rule in (("uop", "HLS array in compute"), ("acc", "HLS array in compute, written in AXI-word columns")):
        depth = max(1, size[name] * 8 // elem[name])
        if depth <= LUTRAM_MAX_DEPTH:
            mems.append(_lutram(name, 1, elem[name], depth, f"{rule}; {depth} words: LUTRAM"))
        elif name == "acc" and elem[name] > g.bus_bits:
            mems.append(_bram(name, 1, elem[name], depth, rule, parity=False, sdp=True,
                              columns=elem[name] // g.bus_bits))
        else:
            mems.append(_bram(name, 1, elem[name], depth, rule, sdp=True))
    # inp/wgt/out: block-design blk_mem_gen IPs, one per 1024-bit bank (pkg_config), true dual port.
    uram_left = 0
    if g.part.uram:
        wgt_banks = math.ceil(elem["wgt"] / MAX_PORT_BITS)
        uram_left = wgt_banks if wgt_uram_banks == "all" else int(wgt_uram_banks or 0)
    for name in ("inp", "wgt", "out"):
        banks = math.ceil(elem[name] / MAX_PORT_BITS)
        width = min(elem[name], MAX_PORT_BITS)
        depth = max(1, size[name] * 8 // elem[name])
        if name == "wgt" and uram_left:
            in_uram = min(banks, uram_left)
            mems.append(_uram(name + "_uram", in_uram, width, depth, "blk_mem_gen in URAM (NUM_WGT_MEM_URAM)"))
            banks -= in_uram
            if not banks:
                continue
        mems.append(_bram(name, banks, width, depth, "blk_mem_gen, true dual port"))
    # The command (3 × 16 B) and dependency (4 × 1 B) queues between the modules.
    if queues == "upstream":
        # vivado.tcl: AXI-stream FIFO generators, 512 and 1024 deep, in block RAM
        for q in COMMAND_QUEUES:
            mems.append(_bram(q, 1, 128, 512, "AXI-stream FIFO, 16 B × 512 (vivado.tcl)", sdp=True))
        for q in DEPENDENCY_QUEUES:
            mems.append(_bram(q, 1, 8, 1024, "AXI-stream FIFO, 1 B × 1024 (vivado.tcl)", sdp=True))
    else:
        mems += _shallow_queues()
    return tuple(mems)


# ---- arithmetic ------------------------------------------------------------------------------------

# HLS binding of the GEMM multiplies (vta.cc: one ``i_elem * w_elem`` per MAC, II=1).
DSP_ALL_PERIOD_NS = 4.0      # at this HLS period or slower every multiply has its own DSP
DSP_PAIRED_SHARE = 0.5       # faster: HLS pairs products, one on a DSP (mac_muladd), one in LUTs
LUT_MUL_MAX_BITS = 4         # multiplies whose operands are all this narrow are LUTs
LUT_PER_MUL_BIT2 = 40 / 64   # LUTs per partial-product bit (HLS: ~40 LUTs per 8×8 multiply)
INDEX_DSPS = 2               # compute's two pad-offset multiplies of the acc DMA (placed build)
ALU_LUTS_PER_BIT = 6         # min/max compare + select, add, 32-way arithmetic shift, op select
ACC_LUTS_PER_BIT = 2         # accumulate adder and the reset/write-back select

# The shell: five HLS AXI masters (fetch ins_port, load data_port, compute uop_port and
# data_port, store data_port) through a 5:1 SmartConnect, AXI-lite control of four blocks.
AXI_MASTERS = 5
SHELL_LUTS = 5200            # calibrated: control FSMs, decode, AXI-lite, interconnect, reset
SHELL_LUTS_PER_BUS_BIT = 6   # per master and AXI data bit: register slices and width muxes
SHELL_LUTRAM_PER_BUS_BIT = 5.85  # calibrated, per master and data bit: 32-deep R/W data FIFOs (RAM32M)
SHELL_FFS = 13500            # calibrated, as SHELL_LUTS
SHELL_FFS_PER_BUS_BIT = 8    # per master and data bit: ~4 register stages of R and W data
MUL_DELAY_NS = 3.0           # a registered-input DSP48 multiply (7-series -1, DS187)
ADD_LEVEL_DELAY_NS = 1.0     # one ~20-bit carry-chain adder level with routing

# Relative uncertainty (one side) of each estimate, from the published build's residual and the
# spread of the binding rules (docs/resources.md).
UNCERTAINTY = {"bram": 0.06, "uram": 0.0, "dsp": 0.10, "lut": 0.15, "lut_logic": 0.15, "lut_memory": 0.30,
               "ff": 0.20}
INTEL_UNCERTAINTY = {k: max(v, 0.5) for k, v in UNCERTAINTY.items()}


def _dsp_per_mul(a: int, b: int, family: str) -> int:
    lo, hi = sorted((a, b))
    if family == "cyclonev":        # one DSP block: three 9×9, two 18×18 or one 27×27
        return 1
    wa, wb = (18, 27) if family == "ultrascale+" else (18, 25)
    return math.ceil(lo / (wa - 1)) * math.ceil(hi / (wb - 1)) if (lo > wa or hi > wb) else 1


def _muls_per_dsp(a: int, b: int, family: str) -> int:
    if family != "cyclonev":
        return 1
    hi = max(a, b)
    return 3 if hi <= 9 else 2 if hi <= 18 else 1


@dataclasses.dataclass(frozen=True)
class MultiplierBinding:
    """Where the GEMM's multiplies end up."""

    multiplies: int          # BATCH·BLOCK_IN·BLOCK_OUT
    hls_on_dsp: int          # bound to DSPs by HLS
    paired: bool             # HLS paired products (a DSP adds the LUT product of its neighbour)
    spilled: int             # of those, moved to LUTs because the part has too few DSPs
    on_lut: int              # in LUTs in the end
    dsp_demand: int          # DSPs the design asks for (GEMM + index arithmetic)
    dsp: int                 # DSPs placed: min(demand, part)
    luts_per_mul: float


def bind_multipliers(g: _Geometry) -> MultiplierBinding:
    a, b, family = g.inp_w, g.wgt_w, g.part.family
    n = g.macs
    if max(a, b) <= LUT_MUL_MAX_BITS:
        hls_dsp = 0
    elif family == "cyclonev" or g.period_ns >= DSP_ALL_PERIOD_NS:
        hls_dsp = n
    else:
        hls_dsp = math.ceil(n * DSP_PAIRED_SHARE)
    per = _dsp_per_mul(a, b, family)
    packs = _muls_per_dsp(a, b, family)
    demand = math.ceil(hls_dsp / packs) * per + (INDEX_DSPS if family != "cyclonev" else 0)
    placed = min(demand, g.part.dsp)
    # Vivado synthesis keeps the DSP count within the part (synth_design -max_dsp defaults to
    # it) and builds the rest of the multiplies in fabric.
    spilled = min(hls_dsp, math.ceil((demand - placed) * packs / per)) if demand > placed else 0
    return MultiplierBinding(n, hls_dsp, 0 < hls_dsp < n, spilled, n - hls_dsp + spilled, demand, placed,
                             LUT_PER_MUL_BIT2 * a * b)


def _tree_bits(g: _Geometry) -> int:
    """Sum bits of one lane's adder tree (BLOCK_IN products of a+b bits, one bit of growth a level)."""
    bits, width, level = 0, g.inp_w + g.wgt_w, 1
    count = g.block
    while count > 1:
        count_next = math.ceil(count / 2)
        bits += (count // 2) * (width + level)
        count, level = count_next, level + 1
    return bits


# ---- the estimate --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Resources:
    """Estimated utilisation of one configuration on its target's part.

    ``bram`` counts 36 Kb tiles (RAMB36 + RAMB18/2, as Vivado's utilisation report); ``lut`` is
    every LUT, ``lut_logic + lut_memory``; ``srams`` lists every memory and how it is built;
    ``uncertainty`` maps each resource to the model's relative uncertainty (one side)."""

    bram: float
    dsp: int
    lut: int
    srams: tuple = ()
    ff: int = 0
    uram: int = 0
    ramb36: int = 0
    ramb18: int = 0
    lut_logic: int = 0
    lut_memory: int = 0
    dsp_demand: int = 0
    multipliers: MultiplierBinding | None = None
    part: str = ""
    breakdown: dict = dataclasses.field(default_factory=dict, compare=False)
    uncertainty: dict = dataclasses.field(default_factory=dict, compare=False)

    def band(self, resource: str) -> tuple[float, float]:
        """(low, high) of ``resource`` within the model's stated uncertainty."""
        value, u = getattr(self, resource), self.uncertainty.get(resource, 0.0)
        return value * (1 - u), value * (1 + u)

    def as_row(self) -> dict:
        return {"bram": self.bram, "dsp": self.dsp, "lut": self.lut, "ff": self.ff, "uram": self.uram}


def _geometry(cfg: HwConfig) -> _Geometry:
    from ._env import FPGA_TARGETS
    from ._timing import timing_of

    fpga = FPGA_TARGETS[cfg.TARGET]
    timing = timing_of(cfg, fpga)
    # pkg_config gives HLS a tighter period than the clock (7 ns for 100 MHz); a TIMING_CLOCK_MHZ
    # override scales that target with the clock.
    period = fpga.hls_period_ns * fpga.freq_mhz / timing.clock_mhz
    return _Geometry(1 << cfg.LOG_BATCH, 1 << cfg.LOG_BLOCK, 1 << cfg.LOG_INP_WIDTH, 1 << cfg.LOG_WGT_WIDTH,
                     1 << cfg.LOG_ACC_WIDTH, timing.bus_bytes * 8, period, CAPACITIES[fpga.part])


def estimate_resources(config, *, wgt_uram_banks: int | str | None = None, queues: str = "shallow") -> Resources:
    """Resource estimate for a :class:`HwConfig` or an ``Env`` (anything with ``.cfg``).

    ``wgt_uram_banks``: how many 1024-bit weight banks go to URAM on a part that has it
    (upstream's NUM_WGT_MEM_URAM; None or 0 as upstream's default, ``"all"`` for every bank).
    ``queues``: ``"shallow"`` (16-deep shift-register FIFOs, what the published build has) or
    ``"upstream"`` (``vivado.tcl``'s 512/1024-deep FIFOs in block RAM, 8 more BRAM tiles).
    Estimates are memoised per configuration: treat the result (and its dicts) as read-only."""
    cfg: HwConfig = getattr(config, "cfg", config)
    if queues not in QUEUE_CHOICES:
        raise ValueError(f"queues = {queues!r} is not one of {', '.join(QUEUE_CHOICES)}")
    return _estimate(cfg, wgt_uram_banks, queues)


@functools.lru_cache(maxsize=1 << 14)
def _estimate(cfg: HwConfig, wgt_uram_banks, queues: str) -> Resources:
    g = _geometry(cfg)
    mems = _memories(cfg, g, wgt_uram_banks, queues)
    mul = bind_multipliers(g)

    ramb36 = sum(m.banks * m.ramb36 for m in mems)
    ramb18 = sum(m.banks * m.ramb18 for m in mems)
    bram = ramb36 + ramb18 / 2 + sum(m.banks * m.m10k for m in mems) * 10 / 36
    uram = sum(m.banks * m.uram for m in mems)

    lanes = g.lanes
    bus_side = AXI_MASTERS * g.bus_bits
    logic = {
        "multiplies in LUTs": mul.on_lut * mul.luts_per_mul,
        # a paired multiply-add DSP (mac_muladd) takes a first-level adder of the tree with it
        "adder trees": lanes * _tree_bits(g) - (min(mul.hls_on_dsp - mul.spilled, lanes * (g.block // 2))
                                                 * (g.inp_w + g.wgt_w + 1) if mul.paired else 0),
        "accumulators": lanes * g.acc_w * ACC_LUTS_PER_BIT,
        "ALU lanes": lanes * g.acc_w * ALU_LUTS_PER_BIT,
        "shell (fixed)": SHELL_LUTS,
        "shell (AXI data path)": SHELL_LUTS_PER_BUS_BIT * bus_side,
    }
    memory = {"LUTRAM buffers": sum(m.banks * m.luts for m in mems if m.kind == "lutram"),
              "queues (SRL)": sum(m.banks * m.luts for m in mems if m.kind == "srl"),
              "shell FIFOs (LUTRAM)": SHELL_LUTRAM_PER_BUS_BIT * bus_side}
    # Registers: the operand tiles read each cycle (weights, inputs, accumulators), the
    # accumulator tile carried through the pipeline, products of LUT multipliers, one cut of
    # the adder tree per extra pipeline stage the HLS period forces, the ALU operands and result.
    levels = max(1, math.ceil(math.log2(g.block))) if g.block > 1 else 0
    stages = max(1, math.ceil((MUL_DELAY_NS + levels * ADD_LEVEL_DELAY_NS) / g.period_ns))
    tree = _tree_bits(g)
    ffs = {
        "operand tiles": g.block * g.block * g.wgt_w + g.batch * g.block * g.inp_w + lanes * g.acc_w,
        "accumulator pipeline": lanes * g.acc_w * (1 + stages),
        "LUT-multiplier products": mul.on_lut * (g.inp_w + g.wgt_w) * stages,
        "adder-tree stages": lanes * ((tree // max(1, levels)) * (stages - 1) + g.inp_w + g.wgt_w + levels),
        "ALU lanes": lanes * g.acc_w * 3,
        "shell (fixed)": SHELL_FFS,
        "shell (AXI data path)": SHELL_FFS_PER_BUS_BIT * bus_side,
    }
    lut_logic = round(sum(logic.values()))
    lut_memory = round(sum(memory.values()))
    ff = round(sum(ffs.values()))
    unc = INTEL_UNCERTAINTY if g.part.family == "cyclonev" else UNCERTAINTY
    return Resources(bram=bram, dsp=mul.dsp, lut=lut_logic + lut_memory, srams=mems, ff=ff, uram=uram,
                     ramb36=ramb36, ramb18=ramb18, lut_logic=lut_logic, lut_memory=lut_memory,
                     dsp_demand=mul.dsp_demand, multipliers=mul, part=g.part.part,
                     breakdown={"lut": {k: round(v) for k, v in {**logic, **memory}.items()},
                                "ff": {k: round(v) for k, v in ffs.items()},
                                "bram": {m.name: m.bram_tiles for m in mems if m.kind in ("bram", "m10k")}},
                     uncertainty=dict(unc))


def capacity_of(config) -> Capacity:
    """The capacity of the FPGA part the config's TARGET builds for."""
    from ._env import FPGA_TARGETS

    cfg: HwConfig = getattr(config, "cfg", config)
    return CAPACITIES[FPGA_TARGETS[cfg.TARGET].part]

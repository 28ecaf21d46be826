"""Timing parameters of a VTA build: part of the hardware config, with per-target defaults.

They are optional config keys beside upstream's (``TIMING_*``); a config that sets none gets
its target's defaults, so every upstream ``vta_config.json`` stays valid. Where each default
comes from:

| key | default | source |
| --- | --- | --- |
| TIMING_CLOCK_MHZ | 100 (pynq, de10nano, sim...), 333 (ultra96, zcu104) | upstream pkg_config.py per target |
| TIMING_BUS_BYTES | 8, 16 on ultra96/zcu104 | AXI data width of pkg_config.py (64/128 bits) |
| TIMING_DRAM_EFFICIENCY | 0.5 | fitted: sustained DMA bytes per cycle / bus bytes, Pynq-Z1 ResNet-18 (docs/timing.md) |
| TIMING_DMA_LATENCY | 24 | fitted: cycles per DMA row request, same calibration |
| TIMING_GEMM_II | 1 | HLS: PIPELINE II=1 on the GEMM uop loop |
| TIMING_ALU_II | 2 | HLS: the ALU reads two accumulator rows through one port |
| TIMING_ALU_II_IMM | 1 | an immediate operand needs one read (Chisel's pipelined ALU; confirmed by the fit) |
| TIMING_PIPELINE_FILL | 4 | GEMM/ALU pipeline depth (Chisel: 4-5 stages); assumption |
| TIMING_FETCH_CYCLES | 2 | a 16-byte instruction over the 8-byte bus; assumption |
| TIMING_CMD_QUEUE_DEPTH | 512 | command FIFO depth of the block design |
"""
from __future__ import annotations

import dataclasses

TIMING_KEYS = {
    # key: (field of TimingParams, type, lowest legal value)
    "TIMING_CLOCK_MHZ": ("clock_mhz", float, 1e-3),
    "TIMING_BUS_BYTES": ("bus_bytes", int, 1),
    "TIMING_DRAM_EFFICIENCY": ("dram_efficiency", float, 1e-3),
    "TIMING_DMA_LATENCY": ("dma_latency", int, 0),
    "TIMING_GEMM_II": ("gemm_ii", int, 1),
    "TIMING_ALU_II": ("alu_ii", int, 1),
    "TIMING_ALU_II_IMM": ("alu_ii_imm", int, 1),
    "TIMING_PIPELINE_FILL": ("pipeline_fill", int, 0),
    "TIMING_FETCH_CYCLES": ("fetch_cycles_per_insn", int, 0),
    "TIMING_CMD_QUEUE_DEPTH": ("cmd_queue_depth", int, 1),
}
# Highest legal value of each key: generous for any FPGA (a 100 GHz clock, a 4 KiB bus, a
# million-cycle latency), and small enough that the cycle model's sums stay exact in float64
# and its arrays in int64 (an unbounded latency overflowed them).
TIMING_MAX = {
    "TIMING_CLOCK_MHZ": 1e5,
    "TIMING_BUS_BYTES": 4096,
    "TIMING_DRAM_EFFICIENCY": 1.0,
    "TIMING_DMA_LATENCY": 1 << 20,
    "TIMING_GEMM_II": 1024,
    "TIMING_ALU_II": 1024,
    "TIMING_ALU_II_IMM": 1024,
    "TIMING_PIPELINE_FILL": 1 << 20,
    "TIMING_FETCH_CYCLES": 1 << 10,
    "TIMING_CMD_QUEUE_DEPTH": 1 << 20,
}


@dataclasses.dataclass(frozen=True)
class TimingParams:
    """Timing parameters in cycles of the accelerator clock (see the module table)."""

    clock_mhz: float = 100.0
    bus_bytes: int = 8
    dram_efficiency: float = 0.5
    dma_latency: int = 24
    gemm_ii: int = 1
    alu_ii: int = 2
    alu_ii_imm: int = 1
    pipeline_fill: int = 4
    fetch_cycles_per_insn: int = 2
    cmd_queue_depth: int = 512

    @property
    def dram_bytes_per_cycle(self) -> float:
        """Sustained DMA throughput: the bus width derated by the DRAM path's efficiency."""
        return self.bus_bytes * self.dram_efficiency

    @classmethod
    def for_env(cls, env, **overrides) -> "TimingParams":
        """The env's timing (target defaults, then the config's TIMING_* keys), then overrides."""
        base = dataclasses.asdict(env.timing)
        unknown = [k for k in overrides if k not in base]
        if unknown:
            raise TypeError(f"unknown timing parameter {unknown[0]!r}; parameters: {', '.join(base)}")
        base.update(overrides)
        return cls(**base)


def target_timing(fpga) -> TimingParams:
    """Defaults for a board: its clock and AXI width; the fitted DRAM figures as fractions."""
    bus_bytes = fpga.axi_bus_bits // 8
    return TimingParams(clock_mhz=float(fpga.freq_mhz), bus_bytes=bus_bytes,
                        fetch_cycles_per_insn=max(1, 16 // bus_bytes))


def timing_of(cfg, fpga) -> TimingParams:
    """The target's defaults with the config's TIMING_* keys applied."""
    overrides = {field: getattr(cfg, key) for key, (field, _, _) in TIMING_KEYS.items()
                 if getattr(cfg, key) is not None}
    return dataclasses.replace(target_timing(fpga), **overrides)

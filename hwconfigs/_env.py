"""``Env``: every quantity derived from a hardware config (vta-spec §1.3–§1.4)."""
from __future__ import annotations

import dataclasses
import functools

from ._config import HwConfig, resolve_config
from ._isa_layout import IsaLayout, isa_layout
from ._timing import TimingParams, timing_of


@dataclasses.dataclass(frozen=True)
class FpgaTarget:
    """Board facts upstream's ``pkg_config.py`` chooses from TARGET."""

    part: str
    freq_mhz: int
    hls_period_ns: int
    axi_bus_bits: int


_PYNQ = FpgaTarget("xc7z020clg484-1", 100, 7, 64)
FPGA_TARGETS = {
    "sim": _PYNQ, "tsim": _PYNQ, "pynq": _PYNQ, "intelfocl": _PYNQ,
    "ultra96": FpgaTarget("xczu3eg-sbva484-1-e", 333, 2, 128),
    "zcu104": FpgaTarget("xczu7ev-ffvc1156-2-e", 333, 2, 128),
    "de10nano": FpgaTarget("5CSEBA6U23I7", 100, 2, 64),
}


class _Intrinsic(str):
    """The GEMM tensor-intrinsic marker; the compiler recognises ``env.gemm`` by identity."""


class Env:
    """Derived hardware quantities for one :class:`HwConfig` (upstream ``vta.Environment``)."""

    inp_scope = "local.inp_buffer"
    wgt_scope = "local.wgt_buffer"
    acc_scope = "local.acc_buffer"
    dma_copy = "dma_copy"
    alu = "alu"
    INS_WIDTH = 128
    INS_ELEM_BYTES = 16
    UOP_WIDTH = 32
    UOP_ELEM_BYTES = 4

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg
        self.TARGET, self.HW_VER = cfg.TARGET, cfg.HW_VER
        for key in ("LOG_INP_WIDTH", "LOG_WGT_WIDTH", "LOG_ACC_WIDTH", "LOG_BATCH", "LOG_BLOCK",
                    "LOG_UOP_BUFF_SIZE", "LOG_INP_BUFF_SIZE", "LOG_WGT_BUFF_SIZE", "LOG_ACC_BUFF_SIZE"):
            setattr(self, key, getattr(cfg, key))
        self.LOG_BLOCK_IN = self.LOG_BLOCK_OUT = cfg.LOG_BLOCK
        self.LOG_OUT_WIDTH = cfg.LOG_INP_WIDTH
        self.LOG_OUT_BUFF_SIZE = cfg.LOG_ACC_BUFF_SIZE + self.LOG_OUT_WIDTH - cfg.LOG_ACC_WIDTH

        self.INP_WIDTH = 1 << cfg.LOG_INP_WIDTH
        self.WGT_WIDTH = 1 << cfg.LOG_WGT_WIDTH
        self.ACC_WIDTH = 1 << cfg.LOG_ACC_WIDTH
        self.OUT_WIDTH = 1 << self.LOG_OUT_WIDTH
        self.BATCH = 1 << cfg.LOG_BATCH
        self.BLOCK_IN = self.BLOCK_OUT = 1 << cfg.LOG_BLOCK

        self.INP_ELEM_BITS = self.BATCH * self.BLOCK_IN * self.INP_WIDTH
        self.WGT_ELEM_BITS = self.BLOCK_OUT * self.BLOCK_IN * self.WGT_WIDTH
        self.ACC_ELEM_BITS = self.BATCH * self.BLOCK_OUT * self.ACC_WIDTH
        self.OUT_ELEM_BITS = self.BATCH * self.BLOCK_OUT * self.OUT_WIDTH
        self.INP_ELEM_BYTES = self.INP_ELEM_BITS // 8
        self.WGT_ELEM_BYTES = self.WGT_ELEM_BITS // 8
        self.ACC_ELEM_BYTES = self.ACC_ELEM_BITS // 8
        self.OUT_ELEM_BYTES = self.OUT_ELEM_BITS // 8

        self.UOP_BUFF_SIZE = 1 << cfg.LOG_UOP_BUFF_SIZE
        self.INP_BUFF_SIZE = 1 << cfg.LOG_INP_BUFF_SIZE
        self.WGT_BUFF_SIZE = 1 << cfg.LOG_WGT_BUFF_SIZE
        self.ACC_BUFF_SIZE = 1 << cfg.LOG_ACC_BUFF_SIZE
        self.OUT_BUFF_SIZE = 1 << self.LOG_OUT_BUFF_SIZE

        self.isa: IsaLayout = isa_layout(cfg)
        self.LOG_UOP_DEPTH = self.isa.log_uop_depth
        self.LOG_INP_DEPTH = self.isa.log_inp_depth
        self.LOG_WGT_DEPTH = self.isa.log_wgt_depth
        self.LOG_ACC_DEPTH = self.isa.log_acc_depth
        self.UOP_DEPTH = 1 << self.LOG_UOP_DEPTH
        self.INP_DEPTH = 1 << self.LOG_INP_DEPTH
        self.WGT_DEPTH = 1 << self.LOG_WGT_DEPTH
        self.ACC_DEPTH = 1 << self.LOG_ACC_DEPTH
        self.OUT_DEPTH = self.OUT_BUFF_SIZE // self.OUT_ELEM_BYTES

        self.inp_dtype = f"int{self.INP_WIDTH}"
        self.wgt_dtype = f"int{self.WGT_WIDTH}"
        self.acc_dtype = f"int{self.ACC_WIDTH}"
        self.out_dtype = f"int{self.OUT_WIDTH}"
        self.gemm = _Intrinsic("GEMM")

        self.fpga = FPGA_TARGETS[cfg.TARGET]
        self.timing: TimingParams = timing_of(cfg, self.fpga)
        self.BUS_WIDTH = self.fpga.axi_bus_bits
        self.bitstream = (f"{self.BATCH}x{self.BLOCK_IN}_i{self.INP_WIDTH}w{self.WGT_WIDTH}a{self.ACC_WIDTH}"
                          f"_{cfg.LOG_UOP_BUFF_SIZE}_{cfg.LOG_INP_BUFF_SIZE}_{cfg.LOG_WGT_BUFF_SIZE}"
                          f"_{cfg.LOG_ACC_BUFF_SIZE}")
        self.MODEL = f"{cfg.TARGET}_{self.bitstream}"

    def __repr__(self) -> str:
        return f"Env({self.MODEL})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Env) and other.cfg == self.cfg

    def __hash__(self) -> int:
        return hash(self.cfg)

    def __reduce__(self):  # picklable for Ray workers: rebuilt from the config
        return (Env, (self.cfg,))


@functools.lru_cache(maxsize=256)
def _env_for(cfg: HwConfig) -> Env:
    return Env(cfg)


def get_env(spec=None, **overrides) -> Env:
    """The Env of a preset name, a JSON path, a dict or a HwConfig (default preset if omitted),
    with ``LOG_*``/TARGET/HW_VER keyword overrides applied on top."""
    return _env_for(resolve_config(spec, **overrides))

"""VTA's control registers, as upstream's drivers address them (vta/src/pynq/pynq_driver.cc,
vta/python/vta/pkg_config.py, the HLS ``s_axilite`` CONTROL_BUS of each module).

Each of the four modules (fetch, load, compute, store) is an HLS block with its own 4 KiB
register window. Offset 0x0 is the block-level control register (ap_start = bit 0,
auto_restart = bit 7); the arguments follow from 0x10, 8 bytes apart. The driver writes the
instruction count and address to fetch, zeros to the DRAM base (pointer) registers of load,
compute and store — so every LOAD/STORE ``dram_base`` is an absolute physical address — starts
fetch with 0x1 and the three others with 0x81, and polls compute's ``done`` until it reads 1.
"""
from __future__ import annotations

import dataclasses

REG_RANGE = 0x1000            # VTA_IP_REG_MAP_RANGE: one window per module

CONTROL = 0x00
FETCH_INSN_COUNT = 0x10
FETCH_INSN_ADDR = 0x18
LOAD_INP_ADDR = 0x10
LOAD_WGT_ADDR = 0x18
COMPUTE_DONE_WR = 0x10
COMPUTE_DONE_RD = 0x18
COMPUTE_UOP_ADDR = 0x20
COMPUTE_BIAS_ADDR = 0x28
STORE_OUT_ADDR = 0x10

START = 0x1                   # VTA_START: ap_start
AUTORESTART = 0x81            # VTA_AUTORESTART: ap_start | auto_restart
DONE = 0x1                    # VTA_DONE, as compute's done register reads after FINISH

# Base address of the fetch window per target; load, compute and store follow 0x1000 apart.
FETCH_BASES = {"pynq": 0x43C00000, "ultra96": 0xA0000000, "zcu104": 0xA0000000, "de10nano": 0xFF220000}
TARGETS = tuple(FETCH_BASES)


@dataclasses.dataclass(frozen=True)
class RegisterMap:
    """Absolute register addresses of one target."""

    target: str
    fetch: int
    load: int
    compute: int
    store: int

    @classmethod
    def for_target(cls, target: str) -> "RegisterMap":
        if target not in FETCH_BASES:
            raise ValueError(f"target {target!r} is not one of {', '.join(TARGETS)}")
        base = FETCH_BASES[target]
        return cls(target, base, base + REG_RANGE, base + 2 * REG_RANGE, base + 3 * REG_RANGE)

    @property
    def windows(self) -> dict[str, int]:
        """Module name -> base address of its register window."""
        return {"fetch": self.fetch, "load": self.load, "compute": self.compute, "store": self.store}

    @property
    def dram_base_registers(self) -> tuple[int, ...]:
        """The pointer registers the driver zeroes (instructions then carry absolute addresses)."""
        return (self.load + LOAD_INP_ADDR, self.load + LOAD_WGT_ADDR, self.compute + COMPUTE_UOP_ADDR,
                self.compute + COMPUTE_BIAS_ADDR, self.store + STORE_OUT_ADDR)

"""The device-driver interface, and the one run sequence every device goes through.

A device gives physically contiguous DRAM buffers (allocate, copy, flush, invalidate, free) and
32-bit register access at absolute addresses. ``run_instructions`` is upstream's
``VTADeviceRun`` (pynq_driver.cc) on top of it: the same register writes in the same order, then
polling compute's done register. The simulated device and the Pynq device both implement the
interface, so a program takes the same path above it whichever runs it.
"""
from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from . import _registers as R
from ._errors import DeviceError


class Buffer(Protocol):
    """A physically contiguous DRAM buffer: ``array`` is the host's uint8 view of it."""

    phys_addr: int
    nbytes: int
    array: np.ndarray

    def flush(self) -> None: ...        # host writes -> visible to the device (cache clean)
    def invalidate(self) -> None: ...   # device writes -> visible to the host
    def free(self) -> None: ...


class Device(Protocol):
    """What the board runner needs of a VTA device."""

    kind: str                     # "sim" | "pynq"
    regs: R.RegisterMap

    def env_for(self, config: dict): ...
        # the hwconfigs.Env this device runs a request of ``config`` on (DeviceError
        # "config_mismatch" when it cannot: a board runs the configuration of its bitstream)
    def begin(self) -> None: ...          # a request starts (the simulated device resets its machine)
    def allocate(self, nbytes: int) -> Buffer: ...
    def write_reg(self, addr: int, value: int) -> None: ...
    def read_reg(self, addr: int) -> int: ...
    def last_counters(self) -> tuple[dict | None, int | None]: ...
        # the seven counters and the cycles of the last run, where the device has them
    def close(self) -> None: ...


def hardware_env(config, served=None):
    """The hwconfigs.Env of a request's ``config``, checked against the configuration a device
    ``served`` (None: any). Two configurations are the same hardware when every ``LOG_*``
    parameter agrees (the bitstream's); the target name and timing keys may differ, and the
    request's own Env is returned (its timing is what the caller's ``simulator.run`` models)."""
    import hwconfigs

    try:
        env = hwconfigs.get_env(config)
    except (ValueError, TypeError) as exc:
        raise DeviceError(f"bad hardware config: {exc}", "bad_request") from None
    if served is not None:
        mine, theirs = served.cfg.to_dict(), env.cfg.to_dict()
        differ = sorted(k for k in mine if k.startswith("LOG_") and mine[k] != theirs.get(k))
        if differ:
            raise DeviceError(f"this device runs {served!r}, the request needs {env!r} ("
                              + ", ".join(f"{k} {mine[k]} vs {theirs.get(k)}" for k in differ) + ")",
                              "config_mismatch")
    return env


def run_instructions(device: Device, insn_phys: int, count: int, timeout_s: float | None = None) -> float:
    """Run ``count`` instructions at physical address ``insn_phys`` to FINISH, as upstream's
    driver does; the wall time from start to done observed. DeviceError when done does not
    read 1 within ``timeout_s`` (None: wait as long as it takes)."""
    regs, write = device.regs, device.write_reg
    write(regs.fetch + R.FETCH_INSN_COUNT, count)
    write(regs.fetch + R.FETCH_INSN_ADDR, insn_phys)
    for addr in regs.dram_base_registers:
        write(addr, 0)
    start = time.perf_counter()
    write(regs.fetch + R.CONTROL, R.START)
    for base in (regs.load, regs.compute, regs.store):
        write(base + R.CONTROL, R.AUTORESTART)
    pause = 0.0
    while device.read_reg(regs.compute + R.COMPUTE_DONE_RD) != R.DONE:
        elapsed = time.perf_counter() - start
        if timeout_s is not None and elapsed > timeout_s:
            raise DeviceError(f"the device did not finish {count} instructions within {timeout_s:g} s "
                              f"(compute done register never read {R.DONE:#x})")
        time.sleep(pause)
        pause = min(2 * pause + 1e-5, 1e-3)   # yield at first, then poll every millisecond
    return time.perf_counter() - start

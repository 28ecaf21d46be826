"""The Pynq device: a VTA bitstream on a Xilinx board, through the ``pynq`` Python package.

``pynq.Bitstream(bitstream).download()`` programs the FPGA, ``pynq.allocate`` gives physically contiguous
(CMA) buffers with their ``physical_address``, ``pynq.MMIO`` maps each module's register window.
``pynq`` is imported only when the device is created (it exists only on the board). A real board
has no counters and no cycle register in upstream's HLS design: ``last_counters`` is (None,
None) and the board runner falls back to the measured wall time.
"""
from __future__ import annotations

import numpy as np

from . import _registers as R
from ._device import hardware_env
from ._errors import DeviceError


class PynqBuffer:
    """A ``pynq.allocate`` buffer behind the ``Buffer`` interface."""

    def __init__(self, buf, nbytes: int):
        self._buf = buf
        self.nbytes = nbytes
        self.array = np.asarray(buf).reshape(-1).view(np.uint8)[:nbytes]
        address = getattr(buf, "device_address", None)          # pynq >= 3.0
        self.phys_addr = int(address if address is not None else buf.physical_address)

    def flush(self) -> None:
        self._buf.flush()

    def invalidate(self) -> None:
        self._buf.invalidate()

    def free(self) -> None:
        close = getattr(self._buf, "freebuffer", None) or self._buf.close
        close()


class PynqDevice:
    """``Device`` over the ``pynq`` package; ``pynq`` may be given (tests pass a fake backed by
    the simulated device), else it is imported."""

    kind = "pynq"

    def __init__(self, target: str, env, bitstream=None, pynq=None):
        self.regs = R.RegisterMap.for_target(target)
        self.env = env
        if pynq is None:
            try:
                import pynq
            except ImportError:
                raise DeviceError("the pynq device needs the `pynq` package (on the board: pip install pynq)") from None
        self._pynq = pynq
        if bitstream is not None:
            try:
                pynq.Bitstream(str(bitstream)).download()   # no .hwh needed beside the .bit
            except Exception as exc:    # pynq raises assorted errors for a bad or missing .bit
                raise DeviceError(f"cannot load bitstream {bitstream}: {exc}") from None
        self._mmio = {base: pynq.MMIO(base, R.REG_RANGE) for base in self.regs.windows.values()}

    def env_for(self, config: dict):
        return hardware_env(config, self.env)

    def begin(self) -> None:
        pass        # a board cannot be reset from here; a complete program leaves its queues empty

    def allocate(self, nbytes: int) -> PynqBuffer:
        try:
            buf = self._pynq.allocate(shape=(max(int(nbytes), 1),), dtype=np.uint8)
        except Exception as exc:   # CMA exhausted or fragmented
            raise DeviceError(f"cannot allocate {nbytes} B of contiguous memory: {exc}") from None
        return PynqBuffer(buf, int(nbytes))

    def _window(self, addr: int):
        base = addr - addr % R.REG_RANGE
        if base not in self._mmio:
            raise DeviceError(f"no VTA register at {addr:#x}")
        return self._mmio[base], addr - base

    def write_reg(self, addr: int, value: int) -> None:
        mmio, offset = self._window(addr)
        mmio.write(offset, int(value))

    def read_reg(self, addr: int) -> int:
        mmio, offset = self._window(addr)
        return int(mmio.read(offset))

    def last_counters(self) -> tuple[dict | None, int | None]:
        return None, None

    def close(self) -> None:
        pass

"""The simulated device: our functional simulator behind VTA's register-level protocol.

It decodes the register writes of ``_device.run_instructions`` like the HLS blocks do: the
instruction count and address latch in fetch's registers, the DRAM base (pointer) registers
must hold 0 (instructions carry absolute physical addresses, as upstream's driver sets them),
and once fetch is started (0x1) while load, compute and store auto-restart (0x81) the machine
runs the stream it reads from its DRAM to FINISH and compute's done register reads 1. DRAM is
the simulator's flat byte array, indexed by physical address; buffers are handed out from
``DRAM_BASE`` upwards, page by page, so a program built for other addresses must be relocated.

Unlike a board it also reports the seven counters and the cycle model's cycles of each run,
and it starts every request from a reset machine (zero SRAMs and token queues), as
``simulator.run`` does on its fresh simulator.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import _registers as R
from ._device import hardware_env
from ._errors import DeviceError

PAGE = 4096
DRAM_BASE = 0x1000_0000          # first physical address handed out (like a CMA region)
DRAM_BYTES = 256 << 20           # buffers of all live requests together (lazily zeroed pages)


@dataclasses.dataclass(eq=False)
class SimBuffer:
    phys_addr: int
    nbytes: int
    array: np.ndarray
    _device: "SimDevice"

    def flush(self) -> None:          # the simulator's DRAM is coherent with the host
        pass

    def invalidate(self) -> None:
        pass

    def free(self) -> None:
        self._device._free(self)


class SimDevice:
    """``Device`` over ``simulator.Simulator``. ``env`` fixes the configuration (a board's
    bitstream: requests must have its LOG_* parameters); without it the device runs each request
    on the configuration it names."""

    kind = "sim"

    def __init__(self, target: str = "pynq", env=None, dram_bytes: int = DRAM_BYTES):
        self.regs = R.RegisterMap.for_target(target)
        self.env = env
        self.dram_bytes = int(dram_bytes)
        self._sim = None                 # the machine of the configuration last asked for
        self._free_list = [(DRAM_BASE, self.dram_bytes)]   # (address, bytes), sorted
        self._live: dict[int, SimBuffer] = {}
        self._regs: dict[int, int] = {}
        self._done = 0
        self._last: tuple[dict | None, int | None] = (None, None)
        if env is not None:
            self._select(env)

    # ---- configuration -------------------------------------------------------------------
    def env_for(self, config: dict):
        env = hardware_env(config, self.env)
        self._select(env)
        return env

    def _select(self, env) -> None:
        from simulator import Simulator

        if self._sim is not None and self._sim.env == env:
            return
        if self._live:
            raise DeviceError(f"cannot switch the simulated device to {env!r} with {len(self._live)} buffers live")
        # A new machine per configuration, like loading its bitstream (the DRAM pages are only
        # allocated as buffers touch them).
        self._sim = Simulator(env, dram_size=DRAM_BASE + self.dram_bytes)

    def begin(self) -> None:
        self._sim.reset()

    # ---- memory ----------------------------------------------------------------------------
    def allocate(self, nbytes: int) -> SimBuffer:
        if self._sim is None:
            raise DeviceError("the simulated device has no configuration yet (env_for first)")
        size = -(-max(int(nbytes), 1) // PAGE) * PAGE
        for index, (addr, free) in enumerate(self._free_list):
            if free >= size:
                self._free_list[index:index + 1] = [(addr + size, free - size)] if free > size else []
                array = self._sim.dram[addr:addr + int(nbytes)]
                self._sim.dram[addr:addr + size] = 0
                buf = SimBuffer(addr, int(nbytes), array, self)
                self._live[addr] = buf
                return buf
        raise DeviceError(f"out of device memory: {nbytes} B asked, {self.dram_bytes} B in all")

    def _free(self, buf: SimBuffer) -> None:
        if self._live.pop(buf.phys_addr, None) is None:
            raise DeviceError(f"free of {buf.phys_addr:#x}: not a live buffer")
        size = -(-max(buf.nbytes, 1) // PAGE) * PAGE
        blocks = sorted(self._free_list + [(buf.phys_addr, size)])
        merged = [blocks[0]]
        for addr, free in blocks[1:]:
            last_addr, last_free = merged[-1]
            if last_addr + last_free == addr:
                merged[-1] = (last_addr, last_free + free)
            else:
                merged.append((addr, free))
        self._free_list = merged

    # ---- registers -----------------------------------------------------------------------
    def _window(self, addr: int) -> str:
        for name, base in self.regs.windows.items():
            if base <= addr < base + R.REG_RANGE:
                return name
        raise DeviceError(f"no VTA register at {addr:#x} (the {self.regs.target} windows start at "
                          f"{self.regs.fetch:#x})")

    def write_reg(self, addr: int, value: int) -> None:
        self._window(addr)
        self._regs[addr] = int(value) & 0xFFFFFFFF
        if addr == self.regs.fetch + R.CONTROL and value & R.START:
            self._done = 0
        if addr in {base + R.CONTROL for base in self.regs.windows.values()}:
            self._maybe_run()

    def read_reg(self, addr: int) -> int:
        self._window(addr)
        if addr == self.regs.compute + R.COMPUTE_DONE_RD:
            return self._done
        return self._regs.get(addr, 0)

    def _maybe_run(self) -> None:
        regs, get = self.regs, (lambda a: self._regs.get(a, 0))
        started = get(regs.fetch + R.CONTROL) & R.START
        running = all(get(base + R.CONTROL) & R.AUTORESTART == R.AUTORESTART
                      for base in (regs.load, regs.compute, regs.store))
        if not (started and running):
            return
        self._regs[regs.fetch + R.CONTROL] &= ~R.START      # ap_start clears once the block starts
        for addr in regs.dram_base_registers:
            if get(addr):
                raise DeviceError(f"DRAM base register {addr:#x} holds {get(addr):#x}: the device runs "
                                  f"instructions with absolute physical addresses (upstream's driver writes 0)")
        self._run(get(regs.fetch + R.FETCH_INSN_ADDR), get(regs.fetch + R.FETCH_INSN_COUNT))
        self._done = R.DONE

    def _run(self, insn_addr: int, count: int) -> None:
        from compiler.isa import IsaError
        from simulator import SimulationError
        from simulator.timing import TimingModel

        sim = self._sim
        end = insn_addr + 16 * count
        if count <= 0 or insn_addr < DRAM_BASE or end > sim.dram_size:
            raise DeviceError(f"instruction fetch of {count} instructions at {insn_addr:#x} lies outside the "
                              f"device's DRAM [{DRAM_BASE:#x}, {sim.dram_size:#x})")
        raw = sim.dram[insn_addr:end].tobytes()
        try:
            # Decoded once for both the cycle model and the run, as simulator.run does (the
            # uops are already in DRAM, where the program's LOAD UOPs read them).
            stream = sim._decode(raw)
            report = TimingModel(sim.env).estimate(stream, initial_tokens=sim.tokens)
            stats = sim._run_stream(stream)
        except (SimulationError, IsaError) as exc:
            raise DeviceError(f"the simulated VTA refused the program: {exc}") from None
        self._last = (stats, int(report.cycles))

    def last_counters(self) -> tuple[dict | None, int | None]:
        return self._last

    def close(self) -> None:
        self._sim = None

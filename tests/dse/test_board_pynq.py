"""The Pynq driver's register protocol and relocation, run against the simulated device through
a fake ``pynq`` module (``allocate`` and ``MMIO`` backed by ``SimDevice``): the same outputs and
counters as the simulated device, and upstream's register sequence."""
from __future__ import annotations

import numpy as np
import pytest

import hwconfigs
import simulator
from compiler import workloads
from dse.board import BoardPool, BoardServer, PynqDevice, SimDevice
from dse.board import _registers as R

TOKEN = "test-token-0123456789"
ENV = hwconfigs.get_env()


class FakePynq:
    """The three names of ``pynq`` the driver uses; every call is logged in ``events``."""

    def __init__(self, target="pynq"):
        self.sim = SimDevice(target, ENV)
        self.events: list[tuple] = []
        self.overlays: list[str] = []
        fake = self

        class Buffer(np.ndarray):
            def flush(self):
                fake.events.append(("flush", self.physical_address))

            def invalidate(self):
                fake.events.append(("invalidate", self.physical_address))

            def freebuffer(self):
                fake.events.append(("free", self.physical_address))
                self._sim_buffer.free()

        class MMIO:
            def __init__(self, base, length):
                assert length == R.REG_RANGE
                self.base = base

            def write(self, offset, value):
                fake.events.append(("write", self.base + offset, value))
                fake.sim.write_reg(self.base + offset, value)

            def read(self, offset):
                value = fake.sim.read_reg(self.base + offset)
                fake.events.append(("read", self.base + offset, value))
                return value

        self.MMIO = MMIO
        self._buffer_class = Buffer

    def allocate(self, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        sim_buffer = self.sim.allocate(nbytes)
        array = sim_buffer.array.view(dtype).reshape(shape).view(self._buffer_class)
        array.physical_address = sim_buffer.phys_addr
        array._sim_buffer = sim_buffer
        self.events.append(("allocate", sim_buffer.phys_addr, nbytes))
        return array

    def Bitstream(self, path):
        fake = self

        class Loaded:
            def download(self):
                fake.overlays.append(path)

        return Loaded()


LAYER = workloads.Conv2D(batch=1, height=8, width=8, in_channels=32, out_channels=32, kernel=3, stride=1, pad=1)


def _run(device):
    module = workloads.build(LAYER, env=ENV)
    inputs = workloads.random_inputs(LAYER, ENV, seed=5)
    out = workloads.empty_output(LAYER, ENV)
    with BoardServer(device, TOKEN, port=0).start() as server:
        run = BoardPool([server.address], TOKEN).run_module(module, [*inputs, out], timeout_s=60)
    return module, inputs, out, run


def test_pynq_driver_matches_the_simulated_device(tmp_path):
    bitstream = tmp_path / "vta.bit"
    bitstream.write_bytes(b"bits")
    fake = FakePynq()
    device = PynqDevice("pynq", ENV, bitstream, pynq=fake)
    module, inputs, out, run = _run(device)
    assert fake.overlays == [str(bitstream)]
    expected = workloads.empty_output(LAYER, ENV)
    reference = simulator.run(module, *inputs, expected)
    np.testing.assert_array_equal(out, expected)
    assert run.stats is None and run.cycles is None        # a real board has no counters
    assert run.wall_s > 0
    assert fake.sim.last_counters() == (reference.stats, reference.cycles)   # the fake board's own
    _, _, sim_out, sim_run = _run(SimDevice("pynq"))
    np.testing.assert_array_equal(sim_out, out)
    assert sim_run.stats == reference.stats


@pytest.mark.parametrize("target", R.TARGETS)
def test_register_protocol(target):
    fake = FakePynq(target)
    _run(PynqDevice(target, ENV, pynq=fake))
    regs = R.RegisterMap.for_target(target)
    assert regs.fetch == R.FETCH_BASES[target] and regs.store == regs.fetch + 3 * R.REG_RANGE
    writes = [e[1:] for e in fake.events if e[0] == "write"]
    allocated = [e[1] for e in fake.events if e[0] == "allocate"]
    insn_phys = writes[1][1]
    assert insn_phys in allocated
    assert writes[:2] == [(regs.fetch + 0x10, writes[0][1]), (regs.fetch + 0x18, insn_phys)]
    assert writes[0][1] == len(workloads.build(LAYER, env=ENV).program)
    assert writes[2:7] == [(regs.load + 0x10, 0), (regs.load + 0x18, 0), (regs.compute + 0x20, 0),
                           (regs.compute + 0x28, 0), (regs.store + 0x10, 0)]
    assert writes[7:] == [(regs.fetch, 0x1), (regs.load, 0x81), (regs.compute, 0x81), (regs.store, 0x81)]
    reads = [e for e in fake.events if e[0] == "read"]
    assert reads and all(e[1] == regs.compute + 0x18 for e in reads) and reads[-1][2] == 1
    # every buffer the device reads is flushed before the start, the image invalidated after done
    order = [e[0] if e[0] != "write" or e[1] != regs.fetch else "start" for e in fake.events]
    start = order.index("start")
    flushed = {e[1] for e in fake.events[:start] if e[0] == "flush"}
    assert set(allocated) <= flushed
    assert any(e[0] == "invalidate" for e in fake.events[start:])
    assert sorted(e[1] for e in fake.events if e[0] == "free") == sorted(allocated)


def test_sim_device_refuses_nonzero_base_registers():
    from dse.board import DeviceError

    device = SimDevice("pynq", ENV)
    regs = device.regs
    device.write_reg(regs.load + R.LOAD_INP_ADDR, 0x1000)
    device.write_reg(regs.fetch + R.FETCH_INSN_COUNT, 1)
    device.write_reg(regs.fetch + R.CONTROL, R.START)
    for base in (regs.load, regs.compute):
        device.write_reg(base + R.CONTROL, R.AUTORESTART)
    with pytest.raises(DeviceError, match="absolute physical addresses"):
        device.write_reg(regs.store + R.CONTROL, R.AUTORESTART)
    with pytest.raises(DeviceError, match="no VTA register"):
        device.write_reg(0x1234, 0)


def test_a_device_that_never_finishes_is_a_device_error():
    """A hung board (done never reads 1): the driver gives up after the timeout, naming it."""
    from dse.board import DeviceError, run_instructions

    class Hung(SimDevice):
        def read_reg(self, addr):
            return 0 if addr == self.regs.compute + R.COMPUTE_DONE_RD else super().read_reg(addr)

        def _maybe_run(self):
            pass

    with pytest.raises(DeviceError, match="did not finish 5 instructions within 0.05 s"):
        run_instructions(Hung("pynq", ENV), 0x1000_0000, 5, timeout_s=0.05)

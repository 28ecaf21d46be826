"""The board: run built modules on a VTA device over the network.

    pool = BoardPool(["pynq-1:9091", "pynq-2:9091"], read_token("~/.vta-dse/board.token"))
    run = pool.run_module(module, [a, b, out], timeout_s=60)   # fills ``out`` in place
    run.stats, run.cycles, run.wall_s, run.board

``vta-dse board serve`` runs the server (``BoardServer``) on the board, over a device that is
either the simulated device (``SimDevice``: our simulator behind VTA's register protocol) or a
Pynq board (``PynqDevice``). docs/board.md describes the protocol and the setup.
"""
from ._client import BoardPool, BoardRun, parse_board, read_token
from ._device import Device, run_instructions
from ._errors import BoardError, DeviceError, ProtocolError
from ._pynq import PynqDevice
from ._server import BoardServer
from ._simdevice import SimDevice

__all__ = ["BoardError", "BoardPool", "BoardRun", "BoardServer", "Device", "DeviceError", "ProtocolError",
           "PynqDevice", "SimDevice", "parse_board", "read_token", "run_instructions"]

"""Round-trip overhead of a board call on loopback (simulated device) vs a direct simulator.run.

For a few layers: the direct ``simulator.run`` time, the whole ``BoardPool.run_module`` call, the
device's own wall time (start to done, as the board measures it), and the overhead (the call
minus the direct run) split into the client's encoding and the rest (socket, server parse,
relocation, copies). Best of N repeats each.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hwconfigs  # noqa: E402
import simulator  # noqa: E402
from compiler import workloads  # noqa: E402
from dse.board import BoardPool, BoardServer, SimDevice, _wire  # noqa: E402
from dse.board._program import module_request  # noqa: E402

TOKEN = "benchmark-token"
LAYERS = {
    "dense 1x64x32": workloads.Dense(batch=1, in_features=64, out_features=32),
    "add 32x8x8": workloads.Elementwise(batch=1, channels=32, height=8, width=8, op="add"),
    "conv 14x14x32x32": workloads.Conv2D(batch=1, height=14, width=14, in_channels=32, out_channels=32, kernel=3,
                                         stride=1, pad=1),
    "conv 56x56x64x64": workloads.Conv2D(batch=1, height=56, width=56, in_channels=64, out_channels=64, kernel=3,
                                         stride=1, pad=1),
}


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def main(repeat: int = 7) -> None:
    env = hwconfigs.get_env()
    print(f"{'layer':18s} {'insns':>7s} {'MiB':>6s} {'direct':>9s} {'board':>9s} {'device':>9s} "
          f"{'overhead':>9s} {'encode':>8s}   (ms, best of {repeat}; board median in brackets)")
    with BoardServer(SimDevice(), TOKEN, port=0).start() as server:
        pool = BoardPool([server.address], TOKEN)
        for name, layer in LAYERS.items():
            module = workloads.build(layer, env=env)
            args = [*workloads.random_inputs(layer, env), workloads.empty_output(layer, env)]
            n = repeat if sum(len(p) for p in module.programs) < 50_000 else 3
            direct, _, _ = _best(lambda: simulator.run(module, *args), n)
            runs = []
            board, board_median, _ = _best(lambda: runs.append(pool.run_module(module, args, timeout_s=600)), n)
            device = min(run.wall_s for run in runs)
            encode, _, chunks = _best(lambda: _wire.encode(*module_request(module, args)), n)
            size = sum(len(bytes(c)) for c in chunks) / (1 << 20)
            insns = sum(len(p) for p in module.programs)
            print(f"{name:18s} {insns:7d} {size:6.2f} {direct * 1e3:9.2f} {board * 1e3:9.2f} "
                  f"{device * 1e3:9.2f} {(board - direct) * 1e3:9.2f} {encode * 1e3:8.2f}   "
                  f"[{board_median * 1e3:.2f}]")


if __name__ == "__main__":
    main()

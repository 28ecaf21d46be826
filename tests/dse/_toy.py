"""TEST DOUBLE — an analytic evaluator for exercising the search driver's mechanics.

``ToyEvaluator`` is NOT a model of VTA: its counters and cycles are closed-form functions of a
tiled GEMM's knobs and the hardware geometry, so tests of the driver (Optuna storage, Ray,
resume, caching, failures) run in milliseconds and have a brute-force answer. The product path
(`vta-dse run`) uses ``dse.evaluate.SimulatorEvaluator``. It injects faults on demand through
the workload's ``fault`` parameter:

- ``exit:N``          candidates with ``tile_n == N`` end their process (``os._exit(17)``);
- ``segfault:N``      the same by a segmentation fault;
- ``await_kill:N:DIR`` the same candidates write their process id into DIR (a file named after it)
  and sleep until someone kills them;
- ``kill_worker_once:DIR`` the Ray worker dies (SIGKILL, from the candidate's process) the first
  time each candidate is met (a marker file per candidate in DIR);
- ``hang:N``          candidates with ``tile_n == N`` sleep for an hour (timeouts);
- ``stuck:N``         the same, deaf to SIGALRM, like native code that never returns (only a
  SIGKILL of its process ends it);
- ``compile_error:N`` candidates with ``tile_k == N`` fail to "compile".
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

import hwconfigs
from dse import measurement
from dse._study import REQUIRED


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _tiles(w, env):
    p = w.param_dict
    return (math.ceil(p["m"] / env.BATCH), math.ceil(p["n"] / env.BLOCK_OUT), math.ceil(p["k"] / env.BLOCK_IN))


def _env(hw):
    return hwconfigs.get_env(hw if isinstance(hw, hwconfigs.HwConfig) else hwconfigs.HwConfig.from_dict(dict(hw)))


def toy_figures(env, p, knobs) -> dict:
    """The closed-form counters and cycles of a tiled GEMM (the test double's 'truth')."""
    mt, nt, kt = math.ceil(p["m"] / env.BATCH), math.ceil(p["n"] / env.BLOCK_OUT), math.ceil(p["k"] / env.BLOCK_IN)
    tm, tn, tk, nthread = knobs["tile_m"], knobs["tile_n"], knobs["tile_k"], knobs["nthread"]
    tiles = (mt // tm) * (nt // tn) * (kt // tk)
    stats = {"inp_load_nbytes": mt * kt * env.INP_ELEM_BYTES * (nt // tn),
             "wgt_load_nbytes": nt * kt * env.WGT_ELEM_BYTES * (mt // tm),
             "acc_load_nbytes": 0,
             "uop_load_nbytes": 4 * tm * tn * tiles,
             "out_store_nbytes": mt * nt * env.OUT_ELEM_BYTES,
             "gemm_counter": mt * nt * kt,
             "alu_counter": 0}
    bus = env.BUS_WIDTH // 8
    load = (stats["inp_load_nbytes"] + stats["wgt_load_nbytes"] + stats["uop_load_nbytes"]) / bus + 32 * tiles
    compute = stats["gemm_counter"] + 4 * tiles
    store = stats["out_store_nbytes"] / bus
    cycles = int(max(load, compute) + min(load, compute) / 8 + store) if nthread == 2 else int(load + compute + store)
    return {"stats": stats, "cycles": cycles, "seconds": cycles / (env.fpga.freq_mhz * 1e6)}


class ToyEvaluator:
    name = "toy-gemm-test-double"
    ops = {"toy_gemm": {"m": REQUIRED, "n": REQUIRED, "k": REQUIRED, "sleep_ms": 0, "fault": ""}}

    def resolve(self, workloads):
        return list(workloads)

    def knob_space(self, w, hw):
        mt, nt, kt = _tiles(w, _env(hw))
        return {"tile_m": _divisors(mt), "tile_n": _divisors(nt), "tile_k": _divisors(kt), "nthread": [1, 2]}

    def static_check(self, w, hw, knobs):
        env = _env(hw)
        t = knobs["nthread"]
        need = {"inp": knobs["tile_m"] * knobs["tile_k"] * env.INP_ELEM_BYTES * t,
                "wgt": knobs["tile_n"] * knobs["tile_k"] * env.WGT_ELEM_BYTES * t,
                "acc": knobs["tile_m"] * knobs["tile_n"] * env.ACC_ELEM_BYTES * t}
        have = {"inp": env.INP_BUFF_SIZE, "wgt": env.WGT_BUFF_SIZE, "acc": env.ACC_BUFF_SIZE}
        for buf in need:
            if need[buf] > have[buf]:
                return f"{buf} buffer needs {need[buf]} B, has {have[buf]} B"
        return None

    def evaluate(self, task):
        p = task.workload.param_dict
        knobs = task.knob_dict
        env = _env(task.hw)
        fault = p.get("fault", "")
        t0 = time.perf_counter()
        selected = fault.split(":")[1] if ":" in fault else None
        if fault.startswith("kill_worker_once:"):
            marker = Path(selected) / hashlib.sha1(task.key(self.name).encode()).hexdigest()
            if not marker.exists():
                marker.write_text("killed its worker here once\n")
                # isolated, the candidate runs in a child of the worker (which never imports Ray)
                os.kill(os.getpid() if "ray" in sys.modules else os.getppid(), signal.SIGKILL)
                time.sleep(3600)
        if fault.startswith(("exit:", "segfault:", "await_kill:")) and knobs["tile_n"] == int(selected):
            if fault.startswith("exit:"):
                os._exit(17)
            if fault.startswith("segfault:"):
                os.kill(os.getpid(), signal.SIGSEGV)
            (Path(fault.split(":")[2]) / str(os.getpid())).write_text(json.dumps(knobs))
            time.sleep(3600)
        if fault.startswith(("hang:", "stuck:")) and knobs["tile_n"] == int(fault.split(":")[1]):
            if fault.startswith("stuck:"):
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
        if fault.startswith("compile_error:") and knobs["tile_k"] == int(fault.split(":")[1]):
            return measurement("compile_error", "toy: tile_k refused", compile_s=0.0)
        reason = self.static_check(task.workload, task.hw, knobs)
        if reason:
            return measurement("infeasible", reason)
        if p.get("sleep_ms"):
            time.sleep(p["sleep_ms"] / 1000)
        fig = toy_figures(env, p, knobs)
        correct = None
        if task.mode == "full":   # a real computation, tiled as the knobs say, against numpy
            rng = np.random.default_rng(task.seed)
            a = rng.integers(-8, 8, (p["m"], p["k"]), dtype=np.int32)
            b = rng.integers(-8, 8, (p["k"], p["n"]), dtype=np.int32)
            tk = max(1, p["k"] // max(1, math.ceil(p["k"] / env.BLOCK_IN) // knobs["tile_k"]))
            acc = sum(a[:, i:i + tk] @ b[i:i + tk, :] for i in range(0, p["k"], tk))
            correct = bool(np.array_equal(acc, a @ b))
        return measurement("ok", **fig["stats"], cycles=fig["cycles"], latency_s=fig["seconds"], correct=correct,
                           compile_s=time.perf_counter() - t0, sim_s=0.0)


def _only_with_ray():
    if "ray" not in sys.modules:       # the candidate process: no Ray there
        raise ImportError("this evaluator cannot be loaded outside a Ray worker (test double)")
    return UnloadableInChild()


class UnloadableInChild(ToyEvaluator):
    """A ToyEvaluator that loads in a Ray worker but not in its candidate process, like an
    evaluator whose imports fail there."""

    def __reduce__(self):
        return _only_with_ray, ()

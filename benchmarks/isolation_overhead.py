"""What crash isolation costs: the search's count path in this process versus in a child process
(``dse._isolation``), side by side in one run, on the real evaluator and ResNet-18's layers.

Printed: the child's start (interpreter + imports) and its first candidate (numba's cache load);
the pipe round trip of a realistic task and measurement with nothing evaluated; then candidates/s
of ``SimulatorEvaluator.evaluate`` over random legal knob sets of C2..C11 (the fast count path,
~1 ms a candidate), in process and isolated, in alternating rounds (the machine is shared: each
round gives both the same conditions), with the overhead per candidate in wall time and in CPU time
of both processes (the CPU figure holds on a busy machine, where every hand-over between the two
processes also waits for a core). The measurements of the two ways must agree (every field but the
wall-clock ones).

Then one TPE layer search through the driver (one Ray worker), isolated and in process: what the
overhead is worth next to the search's own work per candidate.

    python benchmarks/isolation_overhead.py [--candidates N] [--rounds R] [--study-budget N]
"""
from __future__ import annotations

import os

# One core: BLAS must not spread a matmul over threads (set before numpy is imported).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import hwconfigs  # noqa: E402
from compiler import workloads  # noqa: E402
from dse._isolation import Isolated, shared  # noqa: E402
from dse._layer_job import evaluation  # noqa: E402
from dse._protocol import make_task  # noqa: E402
from dse._study import Workload  # noqa: E402
from dse.evaluate import SimulatorEvaluator  # noqa: E402

WALL_CLOCK = ("compile_s", "sim_s")


def _tasks(count: int, seed: int = 0) -> list:
    """``count`` count-mode tasks of ResNet-18's convolutions, the layers in turn, random legal knobs."""
    env = hwconfigs.get_env()
    hw = hwconfigs.resolve_config("default")
    net = workloads.resnet18()
    names = [name for name in net if name.startswith("C")]
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        name = names[len(out) % len(names)]
        for knobs in workloads.random_legal_knobs(net[name], env, rng, 1):
            out.append(make_task(hw, Workload(name, "resnet18_layer", (("batch", 1), ("layer", name)), 1), knobs))
    return out


class Echo:
    """Answers every task with the same measurement: the pipe's cost alone."""

    def __init__(self, answer: dict):
        self.answer = answer

    def __call__(self, task) -> dict:
        return self.answer


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far; 0 without one."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_candidate(fn, tasks, child_pid=None) -> tuple[float, float, list]:
    """(wall s, CPU s of this process and the child, per candidate; the results)."""
    t0, c0, k0 = time.perf_counter(), time.process_time(), _cpu_s(child_pid)
    results = [fn(task) for task in tasks]
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0 + _cpu_s(child_pid) - k0
    return wall / len(tasks), cpu / len(tasks), results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=300, help="random legal knob sets per round")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds, in process then isolated")
    ap.add_argument("--study-budget", type=int, default=200,
                    help="candidates of the layer search run through the driver (0: skip that section)")
    args = ap.parse_args(argv)
    evaluator = SimulatorEvaluator()
    tasks = _tasks(args.candidates)
    timeout = 300.0
    evaluate_in_process, evaluate_isolated = evaluation(evaluator, isolate=False), evaluation(evaluator)

    t0 = time.perf_counter()
    first = evaluate_isolated(tasks[0], timeout)      # starts this process's child
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluate_isolated(tasks[1], timeout)
    warm = time.perf_counter() - t0
    print(f"child: start + first candidate {cold:.2f} s (interpreter, imports, numba cache load); "
          f"the next candidate {warm * 1e3:.2f} ms")

    import isolation_overhead       # this file by its name, so that the child can import Echo
    with Isolated(isolation_overhead.Echo(first)) as echo:
        echo.run(tasks[0], timeout)
        trips = []
        for _ in range(5):
            t0 = time.perf_counter()
            for task in tasks:
                echo.run(task, timeout)
            trips.append((time.perf_counter() - t0) / len(tasks))
    print(f"pipe round trip (a task out, a {len(first)}-field measurement back, nothing evaluated): "
          f"median {statistics.median(trips) * 1e6:.0f} us, best {min(trips) * 1e6:.0f} us")

    for task in tasks:                   # warm both ways: numba, plan caches, the layers' lru caches
        evaluate_in_process(task, timeout)
        evaluate_isolated(task, timeout)
    child = shared(evaluator.evaluate).pid
    inproc, isolated, cpu_in, cpu_iso = [], [], [], []
    for _ in range(args.rounds):
        t_in, c_in, res_in = _per_candidate(lambda task: evaluate_in_process(task, timeout), tasks)
        t_iso, c_iso, res_iso = _per_candidate(lambda task: evaluate_isolated(task, timeout), tasks, child)
        inproc.append(t_in)
        isolated.append(t_iso)
        cpu_in.append(c_in)
        cpu_iso.append(c_iso)
        for a, b in zip(res_in, res_iso):
            if {k: v for k, v in a.items() if k not in WALL_CLOCK} != {k: v for k, v in b.items() if k not in WALL_CLOCK}:
                sys.exit(f"isolated and in-process measurements differ: {a} vs {b}")
    statuses = {}
    for r in res_in:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    t_in, t_iso = statistics.median(inproc), statistics.median(isolated)
    print(f"\nfast count path, {len(tasks)} random legal knob sets of ResNet-18's convolutions "
          f"({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}), median of {args.rounds} alternating rounds:")
    for name, wall, cpu in (("in process", inproc, cpu_in), ("isolated", isolated, cpu_iso)):
        print(f"  {name:<11} {statistics.median(wall) * 1e3:6.3f} ms/candidate  {1 / statistics.median(wall):7.0f} "
              f"candidates/s  CPU {statistics.median(cpu) * 1e3:6.3f} ms/candidate (both processes)   "
              f"(wall per round: {', '.join(f'{t * 1e3:.3f}' for t in wall)} ms)")
    wall_extra = statistics.median([b - a for a, b in zip(inproc, isolated)])
    cpu_extra = statistics.median([b - a for a, b in zip(cpu_in, cpu_iso)])
    print(f"  overhead    {wall_extra * 1e6:6.0f} us/candidate wall ({wall_extra / t_in * 100:.1f} %), "
          f"{cpu_extra * 1e6:.0f} us/candidate CPU ({cpu_extra / statistics.median(cpu_in) * 100:.1f} %); "
          f"measurements identical; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.study_budget:
        study_section(args.study_budget, max(2, min(args.rounds, 3)))


STUDY = """
[study]
name = "isolation"
seed = 0
n_trials = 1
verify = "none"
[hardware]
LOG_BLOCK = [4]
[schedule]
sampler = "tpe"
trials_per_layer = {budget}
[[workloads]]
name = "C5"
op = "resnet18"
layers = ["C5"]
"""


def study_section(budget: int, rounds: int) -> None:
    """One layer search of the real product path (driver, Ray, one worker, the inner TPE search),
    isolated and in process, alternating: search seconds per candidate."""
    import tempfile

    from dse import load_study
    from dse._driver import RunOptions, run_study

    os.environ["VTA_DSE_CACHE_DIR"] = ""        # no measurement shared between the runs
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.toml"
        path.write_text(STUDY.format(budget=budget))
        evaluator = SimulatorEvaluator()
        spec = load_study(path, evaluator.ops)
        per = {True: [], False: []}
        for run in range(rounds):
            for isolate in (True, False):
                out = Path(tmp) / f"run{run}-{isolate}"
                summary = run_study(spec, evaluator, RunOptions(out=out, workers=1, progress=False, isolate=isolate))
                per[isolate].append(summary.timing["search"] / summary.timing["candidates"])
        print(f"\none TPE layer search through the driver (ResNet-18 C5, {budget} candidates, 1 Ray worker), "
              f"median of {rounds} alternating rounds (the first warms the worker):")
        for isolate, name in ((False, "in process"), (True, "isolated")):
            times = per[isolate][1:] if rounds > 1 else per[isolate]
            print(f"  {name:<11} {statistics.median(times) * 1e3:6.3f} ms/candidate of search   "
                  f"(rounds: {', '.join(f'{t * 1e3:.3f}' for t in per[isolate])} ms)")


if __name__ == "__main__":
    main()

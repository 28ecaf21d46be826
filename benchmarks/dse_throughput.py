"""Candidates/s of the search driver with one and two Ray workers on a GEMM study, the per-candidate
overhead Ray adds, and the 1 -> 2 worker scaling efficiency (goal >= 90%).

    python benchmarks/dse_throughput.py                      # the simulator evaluator (compiler.workloads)
    python benchmarks/dse_throughput.py --evaluator tests.dse._toy:ToyEvaluator --sleep-ms 50
    python benchmarks/dse_throughput.py --profile            # where the driver's own time goes
    python benchmarks/dse_throughput.py --rounds 9           # 1, 2, 1, 2, ... workers: the median efficiency
    python benchmarks/dse_throughput.py --in-process         # candidates in the workers, not isolated
    python benchmarks/dse_throughput.py --per-layer 16       # the stress case: tiny tables

The default, 200 schedules per layer and hardware trial, is the budget ``studies/default.toml``
gives the table of a larger layer (its smaller layers, and ResNet-18's in the main job, are
enumerated whole: thousands per table). ``--per-layer 16`` is the stress case: each hardware
trial is ~0.2 s of evaluation, against which the driver's storage work per hardware trial (ask,
finish, table publishing: ~40 ms of SQLite CPU, taken from the workers on 2 cores) weighs most.

Method. The outer sampler is a grid over twelve hardware geometries (block and micro-op buffer
sizes: each hardware trial builds schedule tables of its own, none answered by another trial's)
and the inner one random, so the proposals do not depend on the results and every worker count
evaluates the same candidates. Each trial tunes two layers of about the same cost: the driver
opens a trial only when every earlier one is told (the answer must not depend on the workers), so
a trial's layer searches are what two workers run side by side. One local Ray session (``num_cpus`` = the most
workers) serves every run, its worker processes warmed up first (imports of the compiler and
simulator); a run with fewer workers gives the driver fewer slots. Runs alternate (1, 2, 1, 2, ...)
for ``--rounds`` rounds, since this machine's speed drifts by +-20% from one minute to the next;
the efficiency of a round is its 2-worker rate over twice the 1-worker rate just before, and the
median over the rounds is the figure. The rate is taken over the search only: first submission to
last message (``RunSummary.timing["search"]``); Ray start-up, warm-up, and writing the tables are
printed separately. The driver submits one Ray job per (hardware trial, layer): the layer's schedule
search runs in the worker and streams a row per candidate. Per-candidate overhead = search time
per candidate with one worker minus the time spent inside ``evaluate()``; it includes the inner
search's ask/tell in the worker, the pipe round trip to its candidate process (dse._isolation), the
stream message and the driver's share.

The driver process shares the machine with the workers: on a 2-core machine two workers plus the
driver (plus Ray's raylet/GCS) are more runnable processes than cores, so the driver's CPU time
per candidate (printed; it includes the threads of Ray's core worker in the driver process) is
time taken from the workers.

The machine's own ceiling is printed first: the same evaluate() calls in one plain process, then
in two plain processes at once (no Ray, no driver). On the 2-vCPU machines we run on, two
CPU-bound processes each slow down by 5-10% (their vCPUs share the host's cores), and single
figures drift by +-15% from one minute to the next; the driver's efficiency is therefore also
printed as a share of that ceiling.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STUDY = """
[study]
name = "throughput"
sampler = "grid"
seed = 0
n_trials = {trials}
verify = "none"
[hardware]
LOG_BLOCK = [4, 5]
LOG_UOP_BUFF_SIZE = {{ low = 10, high = 15 }}
[schedule]
sampler = "random"
trials_per_layer = {per_layer}
{workload}
"""
REAL = """[[workloads]]
op = "dense"
batch = 1
in_features = {n}
out_features = {n}
[[workloads]]
op = "dense"
batch = 1
in_features = {n}
out_features = {m}"""
TOY = """[[workloads]]
op = "toy_gemm"
m = 16
n = 512
k = 512
sleep_ms = {sleep}
[[workloads]]
op = "toy_gemm"
m = 16
n = 448
k = 512
sleep_ms = {sleep}"""


class Timed:
    """The evaluator, plus when (wall clock) and in which worker process each evaluation ran."""

    def __init__(self, inner):
        self.inner = inner
        self.name, self.ops = inner.name, inner.ops

    def resolve(self, workloads):
        return self.inner.resolve(workloads)

    def knob_space(self, workload, hw):
        return self.inner.knob_space(workload, hw)

    def static_check(self, workload, hw, knobs):
        return self.inner.static_check(workload, hw, knobs)

    def evaluate(self, task):
        t0 = time.time()
        out = self.inner.evaluate(task)
        return dict(out, t_start=t0, t_end=time.time(), pid=os.getpid())


def worker_busy(run_dir: Path) -> dict:
    """From the rows stored with the study: per worker process, its time inside evaluate() and the
    gaps between two consecutive evaluate() calls (the inner search's ask/tell, the stream
    message, waiting)."""
    from dse._results import stored_rows

    spans: dict = {}
    for r in stored_rows(f"sqlite:///{run_dir / 'study.db'}"):
        if r.get("t_start") is not None and not r.get("cached"):
            spans.setdefault(r["pid"], set()).add((r["t_start"], r["t_end"]))
    busy = sum(e - s for v in spans.values() for s, e in v)
    gaps = [b[0] - a[1] for v in spans.values() for a, b in zip(sorted(v), sorted(v)[1:])]
    first = min(s for v in spans.values() for s, _ in v)
    last = max(e for v in spans.values() for _, e in v)
    return {"busy": busy, "n": sum(len(v) for v in spans.values()), "gap": statistics.median(gaps) if gaps else 0.0,
            "gap_mean": statistics.mean(gaps) if gaps else 0.0, "span": last - first, "procs": len(spans)}


def _hold(started: str, release: str) -> None:
    """Occupy one CPU of the Ray session (using none) until ``release`` exists. A task rather than
    an actor: its warm worker process goes back to the pool afterwards (a killed actor would take
    a warm worker with it, and the next run would wait for a new one to import everything)."""
    Path(started).touch()
    while not os.path.exists(release):
        time.sleep(0.02)


def _noop(evaluator, task, timeout):
    return None


def _warm(evaluator, task, pause, isolate):
    """Import and evaluate once in a worker (its first candidate pays the imports) and, isolated,
    in the worker's candidate process (dse._isolation: started once per worker), then hold the CPU
    for ``pause`` s so the next warm-up task lands on another worker."""
    from dse._layer_job import evaluate_isolated

    evaluator.evaluate(task)
    if isolate:
        evaluate_isolated(evaluator, task, None)
    time.sleep(pause)
    return os.getpid()


def ray_roundtrip(ray, evaluator, task, n=200) -> tuple[float, float]:
    """(latency of one trivial task submitted and awaited alone, s; time per task with many in flight, s)."""
    ref_e = ray.put(evaluator)
    noop = ray.remote(num_cpus=1, max_retries=0)(_noop)
    ray.get(noop.remote(ref_e, task, None))
    t = time.perf_counter()
    for _ in range(n):
        ray.get(noop.remote(ref_e, task, None))
    alone = (time.perf_counter() - t) / n
    t = time.perf_counter()
    ray.get([noop.remote(ref_e, task, None) for _ in range(n)])
    batched = (time.perf_counter() - t) / n
    return alone, batched


def _timed_loop(evaluator, tasks, barrier, results) -> None:
    barrier.wait()
    t = time.perf_counter()
    for task in tasks:
        evaluator.evaluate(task)
    results.put((time.perf_counter() - t) / len(tasks))


def plain_processes(evaluator, tasks, rounds: int = 3) -> tuple[float, float]:
    """The machine's own ceiling: seconds per evaluate() of ``tasks`` in one plain process, and in
    each of two plain processes running at once (forked, no Ray, no driver), alternating
    ``rounds`` times (this machine's speed drifts by +-15% over seconds)."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    alone, pair = [], []
    for _ in range(rounds):
        for n, out in ((1, alone), (2, pair)):
            barrier, results = ctx.Barrier(n), ctx.Queue()
            procs = [ctx.Process(target=_timed_loop, args=(evaluator, tasks, barrier, results)) for _ in range(n)]
            for proc in procs:
                proc.start()
            out.extend(results.get() for _ in procs)
            for proc in procs:
                proc.join()
    return statistics.mean(alone), statistics.mean(pair)


def sample_tasks(evaluator, spec, workload, n: int, seed: int = 0) -> list:
    """``n`` candidates of the study that run (status ok), drawn uniformly from its hardware and
    schedule spaces."""
    import random
    from dse._protocol import make_task
    from dse._samplers import static_check
    rng = random.Random(seed)
    tasks = []
    while len(tasks) < n:
        check = static_check(spec, {k.name: rng.choice(k.values) for k in spec.hardware})
        if check.reason:
            continue
        space = evaluator.knob_space(workload, check.hw)
        task = make_task(check.hw, workload, {k: rng.choice(v) for k, v in space.items()})
        if evaluator.evaluate(task)["status"] == "ok":
            tasks.append(task)
    return tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--evaluator", default="dse.evaluate:SimulatorEvaluator")
    ap.add_argument("--trials", type=int, default=12, help="hardware trials per run (at most the 12 of the grid)")
    ap.add_argument("--per-layer", type=int, default=200,
                    help="schedule candidates per layer and hardware trial (16: the stress case)")
    ap.add_argument("--size", type=int, default=512, help="dense layer size n (n x n and n x (n - 64) weights)")
    ap.add_argument("--sleep-ms", type=int, default=50, help="toy evaluator only: time per candidate")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--prefetch", type=int, default=None, help="jobs queued beyond the CPUs (driver default)")
    ap.add_argument("--rounds", type=int, default=7,
                    help="repeat the worker counts, alternating (this machine's speed drifts); the median efficiency")
    ap.add_argument("--no-ceiling", action="store_true", help="skip timing plain processes without Ray")
    ap.add_argument("--in-process", action="store_true",
                    help="evaluate in the Ray workers' own processes, without crash isolation (dse._isolation)")
    ap.add_argument("--profile", action="store_true", help="cProfile the driver's search with the most workers")
    args = ap.parse_args()
    import ray

    import hwconfigs
    from dse import load_study
    from dse._driver import RunOptions, run_study
    from dse._protocol import make_task
    from dse.cli import _load_evaluator

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    evaluator = Timed(_load_evaluator(args.evaluator))
    toy = "toy" in args.evaluator.lower()
    workload = TOY.format(sleep=args.sleep_ms) if toy else REAL.format(n=args.size, m=args.size - 64)
    counts = [int(w) for w in args.workers.split(",")]
    print(f"machine: {os.cpu_count()} cores; evaluator {evaluator.name}; {args.trials} hardware trials x "
          f"{args.per_layer} schedules of each of two {'toy gemms' if toy else f'dense layers ({args.size} inputs)'}")
    ceiling = None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.toml"
        path.write_text(STUDY.format(trials=args.trials, per_layer=args.per_layer, workload=workload))
        spec = load_study(path, evaluator.ops)
        w = evaluator.resolve(spec.workloads)[0]
        hw = spec.base.replace(LOG_ACC_BUFF_SIZE=16)
        space = evaluator.knob_space(w, hw)
        task = make_task(hw, w, {k: v[0] for k, v in space.items()})
        evaluator.evaluate(task)
        direct = []
        for _ in range(10):
            t = time.perf_counter()
            evaluator.evaluate(task)
            direct.append(time.perf_counter() - t)
        print(f"direct in-process evaluation of one candidate: {statistics.median(direct) * 1e3:.1f} ms")
        if 2 in counts and not args.no_ceiling:
            one, two = plain_processes(evaluator.inner, sample_tasks(evaluator.inner, spec, w, 20))
            ceiling = one / two
            print(f"machine ceiling (20 candidates of the study, 3 rounds, no Ray, no driver): {one * 1e3:.1f} ms per "
                  f"evaluate() in one process, {two * 1e3:.1f} ms in each of two at once = {ceiling * 100:.0f}% "
                  f"scaling efficiency")
        # One Ray session with as many CPUs as the most workers; a run with fewer workers gives the
        # driver fewer slots (RayPool joins the session and takes min(CPUs, workers)). Restarting
        # Ray for every run cost 5-7 s of start-up and warm-up, so few rounds fit, and single runs
        # drift by +-20% on this machine: many short alternating rounds, medians reported.
        from dse._executor import quiet_auth_banner
        t = time.monotonic()
        with quiet_auth_banner():
            ray.init(address="local", num_cpus=max(counts), include_dashboard=False, log_to_driver=False,
                     configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
        init_s = time.monotonic() - t
        t = time.monotonic()
        hold = ray.remote(num_cpus=1)(_hold)
        warm = ray.remote(num_cpus=1)(_warm)
        pids = set(ray.get([warm.remote(evaluator, task, 0.5, not args.in_process) for _ in range(2 * max(counts))]))
        warm_s = time.monotonic() - t
        alone, batched = ray_roundtrip(ray, evaluator, task)
        print(f"Ray: started in {init_s:.2f} s, {len(pids)} worker processes warmed up in {warm_s:.2f} s; round trip of "
              f"an empty task: {alone * 1e3:.2f} ms alone, {batched * 1e3:.2f} ms/task with 200 in flight")
        efficiencies, runs = [], {w: [] for w in counts}
        for run_no, workers in enumerate(w for _ in range(args.rounds) for w in counts):
            run_dir = Path(tmp) / f"run{run_no}-w{workers}"
            profiler = None
            if args.profile and workers == max(counts) and run_no == len(counts) - 1:
                import cProfile
                profiler = cProfile.Profile(time.thread_time)  # CPU of the driver thread, not wall
                profiler.enable()
            # the CPUs this run does not use are held by idle actors, so the prefetched job waits
            release = run_dir.with_suffix(".release")
            holds = [hold.remote(f"{run_dir}.held{i}", str(release)) for i in range(max(counts) - workers)]
            while not all(os.path.exists(f"{run_dir}.held{i}") for i in range(len(holds))):
                time.sleep(0.02)
            summary = run_study(spec, evaluator, RunOptions(out=run_dir, workers=workers, progress=False,
                                                             prefetch=args.prefetch, isolate=not args.in_process))
            if profiler is not None:
                profiler.disable()
            release.touch()
            ray.get(holds)
            tm = summary.timing
            import pandas as pd
            df = pd.read_parquet(run_dir / "results.parquet")
            fresh = df[(df["mode"] == "count") & (df["cached"] == False) & df["compile_s"].notna()]  # noqa: E712
            wb = worker_busy(run_dir)
            run = dict(tm, worker_s=float((fresh["compile_s"] + fresh["sim_s"]).mean()), rate=tm["candidates"] / tm["search"],
                       busy_share=wb["busy"] / (workers * tm["search"]), per_eval=wb["busy"] / wb["n"],
                       overhead=tm["search"] / tm["candidates"] - wb["busy"] / wb["n"], **wb)
            runs[workers].append(run)
            if workers == max(counts) and min(counts) == 1 and runs[1]:
                efficiencies.append(run["rate"] / (workers * runs[1][-1]["rate"]))
            print(f"round {run_no // len(counts) + 1}, {workers} worker(s): {tm['candidates']} candidates in "
                  f"{tm['search']:.2f} s = {run['rate']:.1f} candidates/s; driver CPU "
                  f"{tm['search_cpu'] / tm['candidates'] * 1e3:.2f} ms/candidate ({tm['search_cpu'] / tm['search'] * 100:.0f}% "
                  f"of a core); workers busy {run['busy_share'] * 100:.0f}% ({run['per_eval'] * 1e3:.1f} ms per evaluate(), "
                  f"gap median {wb['gap'] * 1e3:.1f} ms); {summary.cache_hits} cache hits; tables {tm['write']:.2f} s")
            if profiler is not None:
                import pstats
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        ray.shutdown()
    med = {w: {k: statistics.median(r[k] for r in rs) for k in ("rate", "search_cpu", "candidates", "busy_share",
                                                                  "per_eval", "overhead")} for w, rs in runs.items()}
    print(f"\nmedians over {args.rounds} round(s):")
    for w, m in med.items():
        print(f"  {w} worker(s): {m['rate']:.1f} candidates/s; driver CPU {m['search_cpu'] / m['candidates'] * 1e3:.2f} "
              f"ms/candidate; workers busy {m['busy_share'] * 100:.0f}%, {m['per_eval'] * 1e3:.1f} ms per evaluate()")
    if 1 in med:
        print(f"per-candidate overhead with one worker (search time per candidate - time inside evaluate()): "
              f"{med[1]['overhead'] * 1e3:.1f} ms")
    if efficiencies:
        efficiency = statistics.median(efficiencies)
        print(f"scaling efficiency 1 -> {max(counts)} workers: {efficiency * 100:.0f}% (goal >= 90%), median of "
              f"{len(efficiencies)} rounds: {', '.join(f'{e * 100:.0f}%' for e in efficiencies)}"
              + (f"; {efficiency / ceiling * 100:.0f}% of the machine's own ceiling" if ceiling else ""))
        one, two = med[1], med[max(counts)]
        print(f"worker utilisation 1 -> {max(counts)} workers: {one['busy_share'] * 100:.0f}% -> "
              f"{two['busy_share'] * 100:.0f}%; each evaluation {one['per_eval'] * 1e3:.1f} -> {two['per_eval'] * 1e3:.1f} ms "
              f"when they run at once (the driver and Ray's daemons share the cores)")

if __name__ == "__main__":
    main()

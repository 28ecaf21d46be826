"""Candidates/s of the search driver with one and two Ray workers on a GEMM study, the per-candidate
overhead Ray adds, and the 1 -> 2 worker scaling efficiency (goal >= 90%).

    python benchmarks/dse_throughput.py                      # the simulator evaluator (compiler.workloads)
    python benchmarks/dse_throughput.py --evaluator tests.dse._toy:ToyEvaluator --sleep-ms 50
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STUDY = """
[study]
name = "throughput"
sampler = "random"
seed = 0
n_trials = {trials}
verify = "none"
[hardware]
LOG_ACC_BUFF_SIZE = [15, 16, 17]
[schedule]
sampler = "random"
trials_per_layer = {per_layer}
{workload}
"""
REAL = """[[workloads]]
op = "dense"
batch = 1
in_features = 512
out_features = 512"""
TOY = """[[workloads]]
op = "toy_gemm"
m = 16
n = 512
k = 512
sleep_ms = {sleep}"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--evaluator", default="dse.evaluate:SimulatorEvaluator")
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--per-layer", type=int, default=8)
    ap.add_argument("--sleep-ms", type=int, default=50)
    args = ap.parse_args()
    import os
    import ray
    from dse import load_study
    from dse._driver import RunOptions, run_study
    from dse.cli import _load_evaluator

    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    evaluator = _load_evaluator(args.evaluator)
    workload = TOY.format(sleep=args.sleep_ms) if "toy" in args.evaluator.lower() else REAL
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.toml"
        path.write_text(STUDY.format(trials=args.trials, per_layer=args.per_layer, workload=workload))
        spec = load_study(path, evaluator.ops)
        direct = []
        for w in spec.workloads:   # the same candidates in-process, for Ray's overhead
            import hwconfigs
            from dse._protocol import make_task
            hw = spec.base.replace(LOG_ACC_BUFF_SIZE=16)
            space = evaluator.knob_space(w, hw)
            knobs = {k: v[0] for k, v in space.items()}
            for _ in range(5):
                t = time.perf_counter()
                evaluator.evaluate(make_task(hw, w, knobs))
                direct.append(time.perf_counter() - t)
        per_candidate = sorted(direct)[len(direct) // 2]
        for workers in (1, 2):
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
            summary = run_study(spec, evaluator, RunOptions(out=Path(tmp) / f"w{workers}", workers=workers,
                                                             progress=False))
            ray.shutdown()
            rates[workers] = summary.candidates / summary.elapsed_s
            print(f"{workers} worker(s): {summary.candidates} candidates in {summary.elapsed_s:.2f} s = "
                  f"{rates[workers]:.2f} candidates/s")
    overhead = 1 / rates[1] - per_candidate
    print(f"direct evaluation: {per_candidate * 1e3:.1f} ms/candidate; Ray + driver overhead with one worker: "
          f"{overhead * 1e3:.1f} ms/candidate")
    print(f"scaling efficiency 1 -> 2 workers: {rates[2] / (2 * rates[1]) * 100:.0f}% (goal >= 90%)")


if __name__ == "__main__":
    main()

"""The ``vta-dse`` command line."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from ._paths import STUDIES_DIR

DEFAULT_STUDY = STUDIES_DIR / "default.toml"
DEFAULT_EVALUATOR = "dse.evaluate:SimulatorEvaluator"


def _demo(args) -> int:
    from dse.demo import run_demo

    return run_demo(out=sys.stdout)


def _load_evaluator(spec: str):
    from dse import StudyError

    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr or "Evaluator")
    except (ImportError, AttributeError) as exc:
        raise StudyError(f"--evaluator {spec!r}: cannot import it ({exc})") from None
    return factory()


def _run(args) -> int:
    from dse import StudyError, load_study
    from dse._driver import RunOptions, run_study

    study_path = Path(args.study) if args.study else DEFAULT_STUDY
    if args.workers is not None and args.workers < 1:
        raise StudyError(f"--workers must be at least 1, got {args.workers}")
    if args.workers is not None and args.ray_address:
        raise StudyError("--workers starts a local Ray; with --ray-address the cluster's CPUs are used, give one")
    evaluator = _load_evaluator(args.evaluator)
    spec = load_study(study_path, evaluator.ops, trials=args.trials)
    out = Path(args.out) if args.out else Path("vta-dse-runs") / spec.name
    options = RunOptions(out=out, workers=args.workers or (None if args.ray_address else os.cpu_count()),
                         ray_address=args.ray_address, storage=args.storage, progress=not args.quiet)
    summary = run_study(spec, evaluator, options)
    p = print
    p(f"study {summary.study_name}: {summary.complete} complete trials, {summary.feasible} feasible; "
      f"{summary.candidates} candidates evaluated ({summary.cache_hits} cache hits) in {summary.elapsed_s:.1f} s")
    if summary.best:
        b = summary.best
        p(f"best: trial {b['trial']}  latency {b['latency_s']:.6g} s  bram {b['bram']:g}  dsp {b['dsp']:g}  "
          f"verified {b['verified']}  -> {out / 'best_config.json'}")
    else:
        p("no feasible configuration found (see results.csv for each candidate's status and error)")
    p(f"results: {out / 'results.parquet'}, {out / 'results.csv'}, {out / 'report.html'}")
    if summary.interrupted:
        p("interrupted: run the same command again to resume")
        return 130
    return 0


def _show(args) -> int:
    from dse._show import show

    return show(args.dir, top=args.top)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vta-dse", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="compile the upstream tutorials with our compiler, run them on our "
                                       "simulator and compare the counters with the published ones")
    demo.set_defaults(func=_demo)

    run = sub.add_parser("run", help="run (or resume) a design-space study",
                         description="Run a study to its trial budget; rerunning the same command resumes it.")
    run.add_argument("study", nargs="?", help=f"study file (default: {DEFAULT_STUDY})")
    run.add_argument("--trials", type=int, help="hardware-trial budget (overrides [study] n_trials)")
    run.add_argument("--workers", type=int, help="local Ray with this many CPUs (default: all cores)")
    run.add_argument("--ray-address", help="join a running Ray cluster (e.g. 10.0.0.1:6379 or auto)")
    run.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUT/study.db)")
    run.add_argument("--out", help="output folder (default: vta-dse-runs/STUDY_NAME)")
    run.add_argument("--evaluator", default=DEFAULT_EVALUATOR,
                     help="module:Class of the candidate evaluator (default: %(default)s)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    show = sub.add_parser("show", help="print the top candidates and the Pareto front of a finished run")
    show.add_argument("dir", help="output folder of `vta-dse run`")
    show.add_argument("--top", type=int, default=10)
    show.set_defaults(func=_show)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["demo"])
    if args.command in ("run", "show"):
        from dse import StudyError

        try:
            return args.func(args)
        except StudyError as exc:
            print(f"vta-dse: error: {exc}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            if args.command != "show":
                raise
            # the reader went away (`vta-dse show DIR | head`): not an error; nothing more to print
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

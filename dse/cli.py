"""The ``vta-dse`` command line."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
from pathlib import Path

from ._paths import STUDIES_DIR

DEFAULT_STUDY = STUDIES_DIR / "default.toml"
DEFAULT_EVALUATOR = "dse.evaluate:SimulatorEvaluator"

# Exit statuses of `vta-dse run` (the parser's epilog lists them).
EXIT_OK, EXIT_USAGE, EXIT_NONE_FEASIBLE = 0, 2, 3
EXIT_STATUS = f"""exit status of `vta-dse run`:
  {EXIT_OK}    the study ended and a feasible configuration was found (best_config.json)
  {EXIT_USAGE}    bad input: study file, option, output folder or storage (nothing was run)
  {EXIT_NONE_FEASIBLE}    the study ended but no configuration was feasible (no best_config.json)
  130  interrupted by Ctrl-C (SIGINT), 143 by SIGTERM: outputs written; rerun the command to resume"""


def _demo(args) -> int:
    from dse.demo import run_demo

    return run_demo(out=sys.stdout)


def _import(args) -> int:
    from dse._import import import_model

    return import_model(args)


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
    from dse._study import check_out_dir
    from dse._tables import baseline_text

    study_path = Path(args.study) if args.study else DEFAULT_STUDY
    if args.workers is not None and args.workers < 1:
        raise StudyError(f"--workers must be at least 1, got {args.workers}")
    if args.workers is not None and args.ray_address:
        raise StudyError("--workers starts a local Ray; with --ray-address the cluster's CPUs are used, give one")
    evaluator = _load_evaluator(args.evaluator)
    spec = load_study(study_path, evaluator.ops, trials=args.trials, resolve=getattr(evaluator, "resolve", None))
    for warning in spec.warnings:
        print(f"vta-dse: warning: {warning}", file=sys.stderr)
    out = check_out_dir(Path(args.out) if args.out else Path("vta-dse-runs") / spec.name)
    check_out_folder(out, spec.name)
    options = RunOptions(out=out, workers=args.workers or (None if args.ray_address else os.cpu_count()),
                         ray_address=args.ray_address, storage=args.storage, progress=not args.quiet)
    summary = run_study(spec, evaluator, options)
    p = print
    filled = f" ({summary.filled} scored exactly from the schedule tables)" if summary.filled else ""
    p(f"study {summary.study_name}: {summary.complete} complete trials{filled}, {summary.feasible} feasible; "
      f"{summary.candidates} candidates evaluated ({summary.cache_hits} cache hits) in {summary.elapsed_s:.1f} s")
    if summary.best:
        b = summary.best
        p(f"best: trial {b['trial']}  latency {b['latency_s']:.6g} s  bram {b['bram']:g}  dsp {b['dsp']:g}  "
          f"verified {b['verified']}  -> {out / 'best_config.json'}")
        text = baseline_text(b.get("baseline"))
        if text:
            p(f"vs stock: {text}")
    else:
        p("no feasible configuration found (see results.csv for each candidate's status and error)")
    p(f"results: {out / 'results.parquet'}, {out / 'results.csv'}, {out / 'report.html'} ({out / 'report.md'})")
    if summary.interrupted:
        p("interrupted: run the same command again to resume")
        return _interrupted_status(args)
    return EXIT_OK if summary.best else EXIT_NONE_FEASIBLE


# Files `vta-dse run` writes into its output folder (any of them marks a folder as one of ours).
RUN_FILES = ("study.json", "cache.jsonl", "study.db", "results.parquet", "trials.parquet")


def _studies_in(out: Path) -> set[str]:
    """Names of the studies whose results ``out`` holds (study.json, written when a run starts)."""
    names = set()
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        names.add(json.loads((out / "study.json").read_text())["study"])
    return {n for n in names if isinstance(n, str)}


def check_out_folder(out: Path, study_name: str) -> None:
    """Refuse an output folder holding another study's results, or files that are not a run's
    (its tables and report would be overwritten); the same study's folder is resumed."""
    from dse import StudyError

    if not out.exists():
        return
    if not out.is_dir():
        raise StudyError(f"--out {out} is a file, not a folder")
    if not any(out.iterdir()):
        return
    names = _studies_in(out)
    if names and study_name not in names:
        raise StudyError(f"--out {out} holds the results of study {', '.join(map(repr, sorted(names)))}, not "
                         f"{study_name!r}; choose another --out (or remove that folder)")
    if not names and not any((out / name).exists() for name in RUN_FILES):
        raise StudyError(f"--out {out} is not empty and holds no vta-dse results; choose a new or empty folder")


def _interrupted_status(args) -> int:
    received = getattr(args, "signals", None)
    return 128 + (received[0] if received else signal.SIGINT)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a scheduler's or `kill`'s stop) ends the run as Ctrl-C does: open trials are given
    back, the outputs are written and the study resumes; the list names the signal received."""
    received: list[int] = []

    def stop(signum, frame):
        if not received:
            received.append(signum)
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:            # not the main thread: leave SIGTERM alone
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _board(args) -> int:
    from dse.board import BoardError, DeviceError
    from dse.board._serve import serve

    try:
        return serve(args)
    except (BoardError, DeviceError) as exc:
        print(f"vta-dse: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _show(args) -> int:
    from dse._show import show

    return show(args.dir, top=args.top)


def _report(args) -> int:
    from dse._report import write_report

    html_path, md_path = write_report(args.dir)
    print(f"wrote {html_path} and {md_path}")
    return 0


def _compare(args) -> int:
    from dse._compare import compare

    return compare(args.dirs[0], args.dirs[1], sys.stdout)


def _export(args) -> int:
    from dse._export import NoChoice, export_tophub

    try:
        lines, warnings = export_tophub(args.dir)
    except NoChoice as exc:
        print(f"vta-dse: {exc}", file=sys.stderr)
        return EXIT_NONE_FEASIBLE
    text = "\n".join(lines) + "\n"
    for warning in warnings:
        print(f"vta-dse: note: {warning}", file=sys.stderr)
    if args.output and args.output != "-":
        Path(args.output).write_text(text)
        records = sum(1 for line in lines if not line.startswith("#"))
        print(f"wrote {records} AutoTVM record(s) to {args.output} (autotvm.apply_history_best({args.output!r}))")
    else:
        sys.stdout.write(text)
    return 0


def _candidate(args) -> int:
    from dse import _candidate

    command = _candidate.compile_command if args.command == "compile" else _candidate.simulate_command
    try:
        return command(args, sys.stdout)
    except _candidate.CandidateFailed as exc:
        print(f"vta-dse: {args.command}: {exc}", file=sys.stderr)
        return _candidate.EXIT_CANDIDATE_FAILED


def _add_candidate_options(p) -> None:
    layer = p.add_argument_group("the layer (one of)")
    layer.add_argument("--op", help="an op as a study names it: dense, conv2d, group_conv2d, conv2d_transpose, "
                                    "elementwise, resnet18, network, onnx")
    layer.add_argument("--param", action="append", metavar="KEY=VALUE",
                       help="a parameter of --op (repeat), e.g. --param height=14")
    layer.add_argument("--study", help="a study file; with --workload NAME")
    layer.add_argument("--run", help="a run folder; with --workload NAME (its chosen hardware and schedule)")
    layer.add_argument("--workload", help="the workload's name in --study or --run")
    hw = p.add_argument_group("hardware and schedule")
    hw.add_argument("--hw", help="a preset name or a vta_config JSON file (default: the study's or run's, else "
                                 "'default')")
    hw.add_argument("--set", action="append", metavar="KEY=VALUE", help="a hardware override, e.g. --set LOG_BLOCK=5")
    hw.add_argument("--knobs", help="the schedule knobs as JSON, or @FILE (default: the run's chosen schedule, "
                                    "else AutoTVM's fallback)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vta-dse", description="Design-space exploration and autotuning for the "
                                     "VTA deep-learning accelerator.", epilog=EXIT_STATUS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="compile the upstream tutorials with our compiler, run them on our "
                                       "simulator and compare the counters with the published ones")
    demo.set_defaults(func=_demo)

    run = sub.add_parser("run", help="run (or resume) a design-space study",
                         description="Run a study to its trial budget; rerunning the same command resumes it.",
                         epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("study", nargs="?", help=f"study file (default: {DEFAULT_STUDY})")
    run.add_argument("--trials", type=int, help="hardware-trial budget (overrides [study] n_trials)")
    run.add_argument("--workers", type=int, help="local Ray with this many CPUs (default: all cores)")
    run.add_argument("--ray-address", help="join a running Ray cluster (e.g. 10.0.0.1:6379 or auto)")
    run.add_argument("--storage", help="Optuna storage: an RDB URL (default: sqlite:///OUT/study.db) or "
                                       "journal:PATH (an Optuna journal file; drivers on one host)")
    run.add_argument("--out", help="output folder (default: vta-dse-runs/STUDY_NAME); new, empty, or the "
                                   "same study's (resumed)")
    run.add_argument("--evaluator", default=DEFAULT_EVALUATOR,
                     help="module:Class of the candidate evaluator (default: %(default)s)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    show = sub.add_parser("show", help="print the top candidates and the Pareto front of a finished run")
    show.add_argument("dir", help="output folder of `vta-dse run`")
    show.add_argument("--top", type=_positive_int, default=10, help="how many trials to list (default: 10)")
    show.set_defaults(func=_show)

    report = sub.add_parser("report", help="(re)write report.html and report.md of a run folder from its files")
    report.add_argument("dir", help="output folder of `vta-dse run`")
    report.set_defaults(func=_report)

    cmp = sub.add_parser("compare", help="two runs' chosen configurations side by side")
    cmp.add_argument("dirs", nargs=2, metavar="DIR", help="output folders of `vta-dse run`")
    cmp.set_defaults(func=_compare)

    export = sub.add_parser("export", help="the chosen schedules as AutoTVM log records (TopHub format)",
                            description="Write the chosen configuration's schedules as AutoTVM log lines "
                                        "(format v0.2, as TopHub's VTA logs) that upstream TVM applies with "
                                        "autotvm.apply_history_best. Exit 3 when the run chose nothing.")
    export.add_argument("dir", help="output folder of `vta-dse run`")
    export.add_argument("--format", choices=["tophub"], default="tophub", help="only 'tophub' (AutoTVM log)")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.set_defaults(func=_export)

    imp = sub.add_parser("import", help="a quantized ONNX model as study workloads (TOML)",
                         description="Map every op VTA can offload from a quantized ONNX model (QDQ or QLinear "
                                     "operators, per-tensor power-of-two scales) onto the op library, with its "
                                     "epilogue, and write them as [[workloads]] tables; what stays on the CPU "
                                     "is listed. Exit 2 on a model that cannot be imported.")
    imp.add_argument("model", help="the .onnx file")
    imp.add_argument("--out", help="TOML file to write (default: standard output)")
    imp.add_argument("--rounding", choices=["exact", "half_up"], default="exact",
                     help="'exact' (default) refuses requantizations VTA would round differently on ties "
                          "(ONNX rounds half to even, VTA half up); 'half_up' accepts VTA's rounding")
    imp.set_defaults(func=_import)

    board = sub.add_parser("board", help="serve a VTA device to studies over the network (docs/board.md)")
    board_sub = board.add_subparsers(dest="board_command", required=True)
    serve = board_sub.add_parser("serve", help="run the board server (on the board, or with the simulated device)",
                                 description="Serve a VTA device to `runner = \"board\"` studies. Exit 2 on bad "
                                             "input; Ctrl-C or SIGTERM stops it.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, loopback "
                                                           "only)")
    serve.add_argument("--port", type=int, default=9091, help="TCP port (default: %(default)s)")
    serve.add_argument("--token-file", help="the shared token (default: ~/.config/vta-dse/board.token, created "
                                            "with a random token if missing)")
    serve.add_argument("--device", default="sim", help="'sim' (our simulator behind VTA's registers) or 'pynq' "
                                                       "(default: %(default)s)")
    serve.add_argument("--target", default="pynq", help="pynq, ultra96, zcu104 or de10nano: the register map "
                                                        "(default: %(default)s)")
    serve.add_argument("--bitstream", help="the VTA .bit file to load (--device pynq)")
    serve.add_argument("--config", help="hardware config (preset or JSON) the device runs (default: sim follows "
                                        "each request; pynq: 'default')")
    serve.set_defaults(func=_board)

    for name, text in (("compile", "compile one candidate: lowered IR and the disassembly of its programs"),
                       ("simulate", "run one candidate: counters, cycles and the cycle model's module breakdown")):
        cand = sub.add_parser(name, help=text, description=text + ". Exit 1 when the candidate fails (knobs "
                              "refused, compile or run error, output mismatch), 2 on bad input.")
        _add_candidate_options(cand)
        if name == "simulate":
            cand.add_argument("--full", action="store_true", help="bit-exact run on random inputs, checked "
                                                                  "against numpy (default: count-only)")
            cand.add_argument("--seed", type=int, default=0, help="seed of --full's inputs (default: 0)")
        cand.set_defaults(func=_candidate)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command in ("run", "show", "report", "compare", "export", "compile", "simulate", "board", "import"):
        from dse import StudyError

        try:
            with _sigterm_as_interrupt() as args.signals:
                return args.func(args)
        except StudyError as exc:
            print(f"vta-dse: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:     # before the search loop took over (e.g. while Ray starts)
            print("vta-dse: interrupted", file=sys.stderr)
            return _interrupted_status(args)
        except BrokenPipeError:
            if args.command == "run":
                raise
            # the reader went away (`vta-dse show DIR | head`): not an error; nothing more to print
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

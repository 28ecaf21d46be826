"""The ``vta-dse`` command line."""
from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
    from dse.demo import run_demo

    return run_demo(out=sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vta-dse", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="compile the upstream tutorials with our compiler, run them on our "
                                       "simulator and compare the counters with the published ones")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["demo"])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

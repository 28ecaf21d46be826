"""Build times of the tutorial kernels (schedule → Module with the full instruction stream).

Goals: simple GEMM well under 100 ms; convolution_opt ≤ 0.12 s (ideally 0.06 s).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the examples package

import compiler  # noqa: E402
import hwconfigs  # noqa: E402
from examples import convolution_opt, matrix_multiply, matrix_multiply_opt, vta_get_started  # noqa: F401,E402


def _best(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        mod = fn()
        times.append(time.perf_counter() - t0)
    return min(times), mod


def main():
    env = hwconfigs.get_env()

    def mm():
        _, t = matrix_multiply.declare(env)
        s = matrix_multiply.schedule(env, t)
        return compiler.build(s, [t[0], t[1], t[5]], env=env, name="my_gemm")

    def mmopt():
        t = matrix_multiply_opt.declare(env)
        s = matrix_multiply_opt.schedule(env, t)
        return compiler.build(s, [t["data"], t["weight"], t["res"]], env=env, name="my_gemm")

    def conv():
        t = convolution_opt.declare(env)
        s = convolution_opt.schedule(env, t)
        return compiler.build(s, [t["data"], t["kernel"], t["res"]], env=env, name="my_conv")

    for name, fn in (("matrix_multiply", mm), ("matrix_multiply_opt", mmopt), ("convolution_opt", conv)):
        best, mod = _best(fn)
        print(f"{name:22s} {best * 1e3:8.2f} ms  ({len(mod.program)} instructions, declare+schedule+build)")


if __name__ == "__main__":
    main()

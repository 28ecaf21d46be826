"""The fast count path on MobileNet-G's grouped and DCGAN's transposed convs (every TopHub record
for VTA, pynq 1x16), with TopHub's knobs and the fallback, beside the general build + count-only
run; each pair's counters and cycles are checked equal (outside the timings).

    python benchmarks/conv_variants_speed.py
"""
from __future__ import annotations

import json
import time

import hwconfigs
import simulator
from compiler import workloads
from compiler.workloads._tophub import _DATA
from dse.fastcount import count_candidate, warm_up


def _layers():
    """(layer, TopHub knobs) of every grouped and transposed conv record."""
    for section in json.loads(_DATA.read_text())["sections"]:
        for rec in section["records"]:
            L = rec["layer"]
            if L["op"] not in ("group_conv2d", "conv2d_transpose"):
                continue
            common = dict(batch=L["N"], height=L["H"], width=L["W"], in_channels=L["C_in"],
                          out_channels=L["C_out"], kernel=L["KH"])
            if L["op"] == "group_conv2d":
                yield workloads.GroupConv2D(**common, stride=L["stride"], pad=L["pad"], groups=L["groups"]), rec["knobs"]
            else:
                yield workloads.Conv2DTranspose(**common, stride=L["stride"][0], pad=L["pad"][0],
                                                output_padding=L["output_padding"][0]), rec["knobs"]


def main() -> None:
    env = hwconfigs.get_env("pynq")
    print(f"warm-up (numba compile or cache load): {warm_up(env):.1f} s")
    print(f"{'layer':72s} {'knobs':8s} {'cycles':>12s} {'fast ms':>9s} {'build+count s':>14s}")
    for layer, tophub in _layers():
        for name, knobs in (("tophub", tophub), ("fallback", None)):
            t0 = time.perf_counter()
            fast = count_candidate(layer, env, knobs)
            t_fast = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = simulator.run(workloads.build(layer, env=env, knobs=knobs), count_only=True)
            t_general = time.perf_counter() - t0
            assert fast.stats == res.stats and fast.cycles == res.cycles, (layer, knobs)
            print(f"{type(layer).__name__ + ' ' + layer.describe():72.72s} {name:8s} {res.cycles:>12,d} "
                  f"{t_fast * 1e3:>9.1f} {t_general:>14.2f}")


if __name__ == "__main__":
    main()

"""ResNet-18 on VTA as upstream deploys it: every offloaded op (19 convs with their fused
epilogues, 8 residual adds) built with the TopHub knobs, counted on the simulator, and summed.

    python examples/resnet18_network.py [path/to/resnet18_pynq_1x16.json]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import hwconfigs
import simulator
from compiler import workloads

REFERENCE = simulator.reference_path("resnet18_pynq_1x16.json")


def network_counters(env, tophub: dict, out=None):
    total = dict.fromkeys(simulator.COUNTER_NAMES, 0)
    seconds = 0.0
    for tag, layer in workloads.resnet18_network():
        result = simulator.run(workloads.build(layer, env=env, knobs=tophub.get(layer.name)), count_only=True)
        for key, value in result.stats.items():
            total[key] += value
        seconds += result.seconds
        if out:
            print(f"{tag:<26} {layer.name:<4} {result.cycles:>9} cycles  {result.stats}", file=out)
    return total, seconds


def main(argv=None) -> int:
    path = Path(argv[0]) if argv else REFERENCE
    tophub = {e["layer"]: e["tophub_cfg"] for e in json.loads(path.read_text())["layers"]}
    total, seconds = network_counters(hwconfigs.get_env("pynq"), tophub, out=sys.stdout)
    print("\nwhole network:")
    for key, value in total.items():
        print(f"  {key:<18} {value:>10}")
    print(f"  modelled VTA time   {seconds * 1e3:.2f} ms on a Pynq-Z1")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The cycle model against the Pynq-Z1 board: predicted vs measured seconds of every ResNet-18
layer (TopHub knobs), as the table in docs/timing.md. Prints figures; asserts nothing."""
from __future__ import annotations

import sys
from pathlib import Path

import hwconfigs
import simulator
from simulator.calibration import compare_resnet18

REFERENCE = simulator.reference_path("resnet18_pynq_1x16.json")


def main(argv=None) -> int:
    reference = Path(argv[0]) if argv else REFERENCE
    calibration = compare_resnet18(reference, hwconfigs.get_env("pynq"))
    print(calibration.markdown())
    print(f"\nnetwork predicted/measured {calibration.network_ratio:.3f}, median layer error "
          f"{calibration.median_error:.1%}, worst layer error {calibration.worst_error:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

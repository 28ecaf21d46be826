"""Compare the cycle model with board measurements: the predicted and measured seconds of
every layer of a reference file such as ``simulator/reference/resnet18_pynq_1x16.json``."""
from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class LayerComparison:
    layer: str
    shape: str
    count: int
    predicted_s: float
    measured_s: float
    bound_by: str

    @property
    def ratio(self) -> float:
        return self.predicted_s / self.measured_s


@dataclasses.dataclass(frozen=True)
class Calibration:
    layers: list

    @property
    def network_ratio(self) -> float:
        """Predicted / measured time of the whole network (layers weighted by their count)."""
        predicted = sum(row.predicted_s * row.count for row in self.layers)
        measured = sum(row.measured_s * row.count for row in self.layers)
        return predicted / measured

    @property
    def median_error(self) -> float:
        return statistics.median(abs(row.ratio - 1) for row in self.layers)

    @property
    def worst_error(self) -> float:
        return max(abs(row.ratio - 1) for row in self.layers)

    def markdown(self) -> str:
        lines = ["| layer | shape | count | predicted ms | measured ms | ratio | bound by |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in self.layers:
            lines.append(f"| {row.layer} | {row.shape} | {row.count} | {row.predicted_s * 1e3:.3f} | "
                         f"{row.measured_s * 1e3:.3f} | {row.ratio:.3f} | {row.bound_by} |")
        lines.append(f"| network | | | | | {self.network_ratio:.3f} | |")
        return "\n".join(lines)


def compare_resnet18(reference: str | Path, env) -> Calibration:
    """Build every layer of the reference with its TopHub knobs, time it with the cycle model on
    ``env`` (the board's config) and pair it with the measured seconds per call."""
    from compiler import workloads
    from simulator import run

    data = json.loads(Path(reference).read_text())
    layers = workloads.resnet18()
    rows = []
    for entry in data["layers"]:
        layer = layers[entry["layer"]]
        mod = workloads.build(layer, env=env, knobs=entry["tophub_cfg"])
        result = run(mod, count_only=True)
        rows.append(LayerComparison(entry["layer"], entry["shape"], entry["count_in_resnet18"], result.seconds,
                                    entry["pynq_board_seconds_per_call"], result.timing[0].bound_by))
    return Calibration(rows)

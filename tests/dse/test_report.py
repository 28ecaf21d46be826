"""The report argues the decision from the run folder's files alone: its content on a real study
and on one where nothing is feasible, the timing columns it reads, and the plots' axes."""
import html
import json
import math
import re
import shutil

import pandas as pd

from dse import _plots
from dse._columns import TIMING
from dse._report import load_run, reason_class, schedule_table, write_report

RUN_FILES = ("study.json", "trials.parquet", "results.parquet", "rejected.parquet", "best.json", "baseline.json")


def test_results_and_baseline_carry_the_cycle_models_breakdown(real_runs):
    results = pd.read_parquet(real_runs["ok"] / "results.parquet")
    ok = results[results["status"] == "ok"]
    assert set(TIMING) <= set(results.columns) and len(ok)
    assert set(ok["bound_by"]) <= {"load", "compute", "store", "fetch"}
    assert ((ok["gemm_utilization"] > 0) & (ok["gemm_utilization"] <= 1)).all()
    assert (ok["dram_load_bytes"] > 0).all() and (ok["dram_store_bytes"] > 0).all()
    busiest = ok[[f"{m}_busy_cycles" for m in ("load", "compute", "store", "fetch")]].astype(float).idxmax(axis=1)
    assert (busiest.str.replace("_busy_cycles", "") == ok["bound_by"]).all()
    # a module's busy cycles never exceed the run's
    assert (ok["compute_busy_cycles"] <= ok["cycles"]).all() and (ok["load_busy_cycles"] <= ok["cycles"]).all()
    base = json.loads((real_runs["ok"] / "baseline.json").read_text())
    assert all(layer["bound_by"] in ("load", "compute", "store", "fetch") for layer in base["layers"])


def test_report_states_the_decision_its_rule_and_the_stock_comparison(real_runs):
    out = real_runs["ok"]
    best = json.loads((out / "best.json").read_text())
    md = (out / "report.md").read_text()
    text = (out / "report.html").read_text()
    assert f"Chosen: trial {best['trial']}, by the rule: the feasible trial with the lowest latency" in md
    assert "ties broken by bram (minimize)" in md
    speedup = best["baseline"]["speedup"]
    if abs(speedup - 1) < 5e-4:     # as fast as stock: the argument is the hardware it saves
        assert "the same latency" in md and f"BRAM {best['baseline']['resource_change']['bram']:+g}" in md
    else:
        assert f"{speedup:.3f}× the speed" in md
    for section in ("FPGA utilisation (estimates)", "Latency per layer and its bottleneck", "Schedules",
                    "Pareto front of the study's objectives", "Convergence", "Why points were infeasible"):
        assert f"## {section}" in md and f"<h2>{html.escape(section)}</h2>" in text
    assert "±6% BRAM" in md and "xc7z020" in md              # estimates, with the model's uncertainty
    # the chosen schedules: one row per layer, knobs as columns
    table = md.split("*the chosen schedules (a split as outer×inner)*")[1].split("\n\n")[1].splitlines()
    assert table[0].startswith("| layer | tile_b |") and len(table) == 2 + len(best["schedules"])
    conv = next(line for line in table if line.startswith("| conv |"))
    h = best["schedules"]["conv"]["tile_h"]
    assert f"| {h[0]}×{h[1]} |" in conv
    # per-layer bottleneck of the chosen and the stock configuration
    layers = md.split("*per layer (ms = count × one run)*")[1].split("\n\n")[1].splitlines()
    assert "| chosen: bound by |" in layers[0] and "| stock: bound by |" in layers[0] and "| change |" in layers[0]
    assert len(layers) == 2 + len(best["schedules"])


def test_report_html_is_self_contained_with_its_figures(real_runs):
    text = (real_runs["ok"] / "report.html").read_text()
    assert "<script" not in text and "<link" not in text and "<img" not in text
    assert not re.search(r"(src|href)=\"(https?:)?//", text) and "url(" not in text
    assert text.count("<svg") >= 4          # utilisation, per layer, front, convergence
    assert "chosen" in text and "stock baseline" in text and "pynq BRAM" in text


def test_report_is_rerendered_from_the_folders_files_alone(real_runs, tmp_path):
    for name in RUN_FILES:
        shutil.copy(real_runs["ok"] / name, tmp_path / name)
    write_report(tmp_path)
    assert (tmp_path / "report.html").read_text() == (real_runs["ok"] / "report.html").read_text()
    assert (tmp_path / "report.md").read_text() == (real_runs["ok"] / "report.md").read_text()


def test_nothing_feasible_is_said_and_no_chosen_table(real_runs):
    out = real_runs["none"]
    md = (out / "report.md").read_text()
    assert "**NO FEASIBLE CONFIGURATION" in md and not (out / "best.json").exists()
    assert "Chosen:" not in md and "the chosen schedules" not in md and "chosen ms" not in md
    assert "over the resource budget: BRAM and DSP and LUT" in md     # the reasons, by class
    assert "No feasible trial: there is no front to draw." in md
    assert "The stock configuration itself is not feasible here" in md


def test_reason_classes():
    assert reason_class("over the resource budget: bram 114 > 14, lut 19072 > 5320") == \
        "over the resource budget: BRAM and LUT"
    assert reason_class("hardware cannot be built: the GEMM ...").startswith("hardware cannot be built")
    assert reason_class("conv: no schedule of this layer compiled and ran") == \
        "a layer has no schedule that fits and runs"


def test_schedule_table_has_one_row_per_layer_and_the_union_of_knobs():
    header, rows = schedule_table({"fc": {"tile_ci": [1, 16], "gemm_order": "co_outer"},
                                   "conv": {"tile_h": [2, 7], "tile_ci": [4, 1], "outer_order": "hwc"}})
    assert header == ["layer", "tile_h", "tile_ci", "gemm_order", "outer_order"]
    assert rows == [["fc", "", "1×16", "co_outer", ""], ["conv", "2×7", "4×1", "", "hwc"]]


def test_load_run_refuses_a_folder_without_a_study(tmp_path):
    import pytest

    from dse import StudyError
    with pytest.raises(StudyError, match="no study results"):
        load_run(tmp_path)


# ---- the plots' axes ------------------------------------------------------------------------

def test_values_spanning_decades_get_a_log_axis_with_decade_ticks():
    axis = _plots.Axis([1e-4, 3e-3, 2e-1], "latency")
    assert axis.log
    ticks = axis.ticks()
    assert all(math.isclose(math.log10(t), round(math.log10(t))) for t in ticks) and len(ticks) >= 3
    assert not _plots.Axis([1.0, 2.0, 5.0], "x").log


def test_trial_axis_has_integer_ticks():
    for n in (2, 3, 7, 12, 30, 200):
        ticks = _plots.Axis(range(n), "trial", integer=True, clip=False).ticks()
        assert all(float(t).is_integer() for t in ticks) and 2 <= len(ticks) <= 8, (n, ticks)


def test_one_outlier_does_not_squeeze_the_rest():
    values = [1.0, 1.1, 1.2, 1.3, 1.25, 1.15, 1.05, 50.0]
    axis = _plots.Axis(values, "x", log=False)
    assert axis.outside(50.0) and not axis.outside(1.3)
    assert axis.frac(1.3) - axis.frac(1.0) > 0.5        # the bulk spans most of the axis
    svg = _plots.scatter([(v, i, "point", "") for i, v in enumerate(values)], "x", "y", "t", xlog=False)
    assert "1 outlier(s) beyond the axis" in svg


def test_tick_labels_do_not_overlap():
    for values in ([0.00066, 0.002], [12232, 19072, 53200], [1, 10, 100, 1000, 10000], [73, 114]):
        axis = _plots.Axis(values, "x")
        ticks = axis.ticks()
        px = [axis.frac(t) * (_plots.W - _plots.LEFT - _plots.RIGHT) for t in ticks]
        widths = [6.5 * len(_plots.fmt(t)) for t in ticks]
        for (a, wa), (b, wb) in zip(zip(px, widths), list(zip(px, widths))[1:]):
            assert b - a > (wa + wb) / 2 + 4, (values, ticks)


def test_count_path_and_bit_exact_rerun_agree_on_the_breakdown(real_runs):
    """The search's count rows (dse.fastcount where it is there) and the verify step's bit-exact
    rows of the same candidates carry the same timing columns."""
    results = pd.read_parquet(real_runs["ok"] / "results.parquet")
    key = ["trial", "workload", "candidate"]
    full = results[results["mode"] == "full"].set_index(key)
    count = results[(results["mode"] == "count") & results["chosen"]].set_index(key)
    both = full.index.intersection(count.index)
    assert len(both) >= 2
    for col in TIMING:
        assert list(full.loc[both, col]) == list(count.loc[both, col]), col


def test_three_objectives_are_drawn_as_projections_with_their_budgets(real_runs, tmp_path):
    for name in RUN_FILES:
        shutil.copy(real_runs["ok"] / name, tmp_path / name)
    meta = json.loads((tmp_path / "study.json").read_text())
    meta["objectives"].append({"name": "dsp", "direction": "minimize"})
    (tmp_path / "study.json").write_text(json.dumps(meta))
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    trials["value_dsp"] = trials["dsp"].astype("Float64")
    trials.to_parquet(tmp_path / "trials.parquet", index=False)
    write_report(tmp_path)
    text = (tmp_path / "report.html").read_text()
    md = (tmp_path / "report.md").read_text()
    assert "3 objectives: each plot is a projection" in md
    assert "latency vs bram:" in text and "latency vs dsp:" in text
    assert "pynq DSP" in text and "pynq BRAM" in text          # each resource axis has its budget line
    assert "| DSP slices |" in md                               # the front table's objective columns

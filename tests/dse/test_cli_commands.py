"""`vta-dse report / compare / export / compile / simulate` as a user types them: output, exit
status and refusals."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.dse.conftest import REPO, subprocess_env

CONV = ["--op", "conv2d", "--param", "height=14", "--param", "width=14", "--param", "in_channels=64",
        "--param", "out_channels=64", "--param", "kernel=3", "--param", "pad=1"]


def vta_dse(*args, **kw):
    return subprocess.run([sys.executable, "-m", "dse", *map(str, args)], capture_output=True, text=True,
                          env=subprocess_env(), cwd=REPO, timeout=300, **kw)


# ---- report ---------------------------------------------------------------------------------

def test_report_rewrites_both_files(real_runs):
    out = real_runs["ok"]
    before = (out / "report.html").read_text()
    (out / "report.html").unlink()
    (out / "report.md").unlink()
    res = vta_dse("report", out)
    assert res.returncode == 0, res.stderr
    assert "report.html" in res.stdout and (out / "report.md").is_file()
    assert (out / "report.html").read_text() == before


def test_report_of_a_folder_without_a_study_is_refused(tmp_path):
    res = vta_dse("report", tmp_path)
    assert res.returncode == 2 and "holds no study results" in res.stderr and "Traceback" not in res.stderr


# ---- compare --------------------------------------------------------------------------------

def test_compare_puts_two_studies_side_by_side(real_runs):
    res = vta_dse("compare", real_runs["ok"], real_runs["none"])
    assert res.returncode == 0, res.stderr
    best = json.loads((real_runs["ok"] / "best.json").read_text())
    lines = {line.split("  ")[0].strip(): line for line in res.stdout.splitlines()}
    assert "none feasible" in lines["chosen trial"] and str(best["trial"]) in lines["chosen trial"]
    assert f"{best['baseline']['speedup']:.3f}x" in lines["speedup vs its stock"]
    assert "report_small" in lines["study"] and "report_nofit" in lines["study"]
    assert any(key.startswith("layer conv") for key in lines)


def test_compare_needs_two_run_folders(real_runs, tmp_path):
    assert vta_dse("compare", real_runs["ok"]).returncode == 2
    res = vta_dse("compare", real_runs["ok"], tmp_path)
    assert res.returncode == 2 and "holds no study results" in res.stderr


# ---- export ---------------------------------------------------------------------------------

def test_export_tophub_writes_autotvm_records_of_the_chosen_schedules(real_runs, tmp_path):
    import hwconfigs

    out = real_runs["ok"]
    best = json.loads((out / "best.json").read_text())
    path = tmp_path / "vta.log"
    res = vta_dse("export", out, "--format", "tophub", "-o", path)
    assert res.returncode == 0, res.stderr
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines if not line.startswith("#")]
    assert all(line.startswith("#") or line.startswith("{") for line in lines)
    model = hwconfigs.get_env(hwconfigs.HwConfig.from_dict(best["config"])).MODEL
    by_task = {r["input"][1]: r for r in records}
    assert set(by_task) == {"dense_packed.vta", "conv2d_packed.vta"}
    for r in records:
        assert r["version"] == 0.2 and set(r) == {"input", "config", "result", "version", "tvm_version"}
        target, _task, args, kwargs = r["input"]
        assert target == f"ext_dev -device=vta -keys=cpu -model={model}" and kwargs == {}
        assert r["result"][1] == 0 and r["result"][0][0] > 0 and isinstance(r["config"]["index"], int)
    conv = by_task["conv2d_packed.vta"]
    block = 1 << best["config"]["LOG_BLOCK"]
    assert conv["input"][2][:2] == [["TENSOR", [1, 64 // block, 14, 14, 1, block], "int8"],
                                    ["TENSOR", [64 // block, 64 // block, 3, 3, block, block], "int8"]]
    assert conv["input"][2][2:] == [[1, 1], [1, 1, 1, 1], [1, 1], f"NCHW1n{block}c", "int32"]
    entity = {name: value for name, _kind, value in conv["config"]["entity"]}
    assert [n for n, _, _ in conv["config"]["entity"]] == ["tile_b", "tile_h", "tile_w", "tile_ci", "tile_co",
                                                           "oc_nthread", "h_nthread"]
    chosen = best["schedules"]["conv"]
    for knob in ("tile_h", "tile_w", "tile_ci", "tile_co"):
        assert entity[knob] == chosen[knob]
    dense = by_task["dense_packed.vta"]
    assert dense["input"][2][2:] == [None, "int32"]


def test_export_to_stdout_and_refusals(real_runs, tmp_path):
    res = vta_dse("export", real_runs["ok"])
    assert res.returncode == 0 and res.stdout.startswith("# vta-dse export")
    res = vta_dse("export", real_runs["none"])
    assert res.returncode == 3 and "no feasible configuration" in res.stderr and res.stdout == ""
    assert vta_dse("export", tmp_path).returncode == 2
    res = vta_dse("export", real_runs["ok"], "--format", "onnx")
    assert res.returncode == 2 and "invalid choice" in res.stderr


# ---- compile / simulate -------------------------------------------------------------------

def test_compile_prints_the_lowered_ir_and_the_disassembly():
    res = vta_dse("compile", *CONV, "--set", "LOG_BLOCK=4")
    assert res.returncode == 0, res.stderr
    assert "== lowered IR ==" in res.stdout and "== program 1 of 1:" in res.stdout
    assert "GEMM" in res.stdout and "LOAD" in res.stdout and "STORE" in res.stdout
    assert "(AutoTVM's fallback)" in res.stdout


def test_simulate_prints_counters_cycles_and_the_module_breakdown():
    knobs = json.dumps({"tile_h": [1, 14], "tile_w": [1, 14], "tile_ci": [2, 2], "tile_co": [1, 4],
                        "load_level": "ci_block"})
    res = vta_dse("simulate", *CONV, "--knobs", knobs, "--full")
    assert res.returncode == 0, res.stderr
    for word in ("inp_load_nbytes", "gemm_counter", "alu_counter", "cycles", "bound by", "GEMM utilisation",
                 "compute busy cycles by kind", "output equals the numpy reference: yes"):
        assert word in res.stdout, word
    assert all(f"\n{m} " in res.stdout for m in ("fetch", "load", "compute", "store"))


def test_simulate_a_runs_chosen_candidate_gives_its_recorded_cycles(real_runs):
    out = real_runs["ok"]
    best = json.loads((out / "best.json").read_text())
    res = vta_dse("simulate", "--run", out, "--workload", "conv")
    assert res.returncode == 0, res.stderr
    rows = pd.read_parquet(out / "results.parquet")
    row = rows[(rows["trial"] == best["trial"]) & (rows["workload"] == "conv") & rows["chosen"]].iloc[0]
    line = next(line for line in res.stdout.splitlines() if line.startswith("cycles"))
    cycles = int(line.split()[1].replace(",", ""))
    assert cycles == int(row["cycles"])
    assert f"bound by           {row['bound_by']:>14}" in res.stdout


@pytest.mark.parametrize("args, status, message", [
    (["--op", "conv3d"], 2, "conv3d"),
    (["--op", "conv2d", "--param", "height=14"], 2, "missing key 'width'"),
    (["--op", "dense", "--param", "in_features"], 2, "expected KEY=VALUE"),
    ([*CONV, "--knobs", "{not json"], 2, "not JSON"),
    ([*CONV, "--set", "LOG_BLOCK=99"], 2, "LOG_BLOCK"),
    ([*CONV, "--hw", "no_such_preset"], 2, "no_such_preset"),
    ([], 2, "name the layer with exactly one of"),
    ([*CONV, "--knobs", '{"tile_h": [3, 5]}'], 1, "tile_h"),
    ([*CONV, "--knobs", '{"tile_q": [1, 14]}'], 1, "unknown knob 'tile_q'"),
])
def test_candidate_refusals(args, status, message):
    for command in ("compile", "simulate"):
        res = vta_dse(command, *args)
        assert res.returncode == status, (command, res.stdout, res.stderr)
        assert message in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_candidate_from_a_study_file_names_its_workloads():
    res = vta_dse("simulate", "--study", "studies/default.toml", "--workload", "fcc")
    assert res.returncode == 2 and "did you mean 'fc'?" in res.stderr
    res = vta_dse("simulate", "--study", "studies/default.toml", "--workload", "fc")
    assert res.returncode == 0 and "layer fc:" in res.stdout


@pytest.mark.parametrize("shape, knobs, index", [
    # (C_in/16, H, W, C_out/16, kernel, stride, pad), TopHub's knob set and its ConfigSpace index
    # (tophub/vta_v0.10.log, ResNet-18 on pynq_1x16_i8w8a32_15_15_18_17)
    ((4, 56, 56, 4, 3, 1, 1), {"tile_h": [7, 8], "tile_w": [1, 56], "tile_ci": [4, 1], "tile_co": [2, 2],
                               "oc_nthread": 2, "h_nthread": 1}, 828),
    ((8, 28, 28, 16, 3, 2, 1), {"tile_h": [1, 14], "tile_w": [1, 14], "tile_ci": [8, 1], "tile_co": [4, 4],
                                "oc_nthread": 2, "h_nthread": 1}, 463),
    ((16, 14, 14, 32, 3, 2, 1), {"tile_h": [1, 7], "tile_w": [1, 7], "tile_ci": [16, 1], "tile_co": [2, 16],
                                 "oc_nthread": 2, "h_nthread": 1}, 203),
    ((8, 28, 28, 8, 3, 1, 1), {"tile_h": [2, 14], "tile_w": [1, 28], "tile_ci": [8, 1], "tile_co": [4, 2],
                               "oc_nthread": 1, "h_nthread": 2}, 1330),
    ((4, 56, 56, 8, 1, 2, 0), {"tile_h": [4, 7], "tile_w": [1, 28], "tile_ci": [4, 1], "tile_co": [2, 4],
                               "oc_nthread": 1, "h_nthread": 2}, 1113),
])
def test_exported_record_matches_tophubs_own(shape, knobs, index):
    import hwconfigs
    from compiler import workloads

    from dse._export import record

    ci, h, w, co, k, s, p = shape
    layer = workloads.Conv2D(batch=1, height=h, width=w, in_channels=16 * ci, out_channels=16 * co, kernel=k,
                             stride=s, pad=p)
    line, notes = record(layer, hwconfigs.get_env("pynq"), {"tile_b": [1, 1], **knobs}, 1e-3, 0.0)
    rec = json.loads(line)
    assert rec["config"]["index"] == index and notes == []
    assert rec["input"][0] == "ext_dev -device=vta -keys=cpu -model=pynq_1x16_i8w8a32_15_15_18_17"
    assert rec["input"][2][:2] == [["TENSOR", [1, ci, h, w, 1, 16], "int8"], ["TENSOR", [co, ci, k, k, 16, 16], "int8"]]
    assert rec["input"][2][2:4] == [[s, s], [p] * 4]


@pytest.mark.parametrize("args, task, shapes", [
    (["--op", "group_conv2d", "--param", "groups=4", "--param", "pad=1"], "group_conv2d_packed.vta",
     [[1, 4, 8, 8, 1, 16], [4, 1, 3, 3, 16, 16]]),
    (["--op", "conv2d_transpose", "--param", "stride=2", "--param", "pad=1"], "conv2d_transpose_packed.vta",
     [[1, 4, 8, 8, 1, 16], [4, 4, 3, 3, 16, 16]]),
])
def test_new_conv_ops_simulate_bit_exactly_and_export_upstreams_task(args, task, shapes):
    common = ["--param", "height=8", "--param", "width=8", "--param", "in_channels=64", "--param", "out_channels=64",
              "--param", "kernel=3"]
    res = vta_dse("simulate", *args, *common, "--full")
    assert res.returncode == 0, res.stderr
    assert "output equals the numpy reference: yes" in res.stdout
    import hwconfigs
    from compiler import workloads

    from dse._export import task_of

    params = {k: int(v) for k, v in (a.split("=") for a in (args + common)[3::2])}
    layer = {"group_conv2d": workloads.GroupConv2D, "conv2d_transpose": workloads.Conv2DTranspose}[args[1]](
        batch=1, **params)
    name, task_args = task_of(layer, hwconfigs.get_env("pynq"))
    assert name == task and [t[1] for t in task_args[:2]] == shapes


def test_a_layer_the_op_library_refuses_is_a_one_line_error():
    res = vta_dse("simulate", "--op", "group_conv2d", "--param", "height=8", "--param", "width=8", "--param",
                  "in_channels=64", "--param", "out_channels=64", "--param", "kernel=3", "--param", "groups=3")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "groups = 3 does not divide in_channels 64" in res.stderr

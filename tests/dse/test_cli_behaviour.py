"""`vta-dse` behaviours a user meets: usage, refused options, exit statuses, the output folder,
the board's TARGET in best_config.json, SIGTERM and SIGKILL of the driver, knobs read back."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.dse.conftest import REPO, TOY, TOY_SPACE, complete_trials, subprocess_env, write_study

STUDY = """
[study]
name = "{name}"
seed = 3
n_trials = {trials}
verify = "none"
[constraints]
board = "pynq"
""" + TOY_SPACE


def vta_dse(*args, **kw):
    return subprocess.run([sys.executable, "-m", "dse", *map(str, args)], capture_output=True, text=True,
                          env=subprocess_env(), cwd=REPO, **kw)


def run_toy(tmp_path, out, name="cli", trials=2, sleep=0, extra=""):
    path = write_study(tmp_path, STUDY.format(name=name, trials=trials, sleep=sleep) + extra, f"{name}.toml")
    return vta_dse("run", path, "--evaluator", TOY, "--out", out, "--workers", "1", "--quiet", timeout=300)


def test_bare_command_prints_usage_and_exits_2():
    res = vta_dse()
    assert res.returncode == 2
    assert res.stderr.startswith("usage: vta-dse") and "demo" in res.stderr and "exit status" in res.stderr
    assert "tutorials, compiled by" not in res.stdout + res.stderr         # the demo did not run


def test_show_top_zero_is_refused(tmp_path):
    res = vta_dse("show", tmp_path, "--top", "0")
    assert res.returncode == 2
    assert "argument --top: must be at least 1, got 0" in res.stderr and "Empty DataFrame" not in res.stdout


def test_board_constraint_sets_the_target_of_every_trial_and_of_best_config(tmp_path):
    out = tmp_path / "out"
    res = run_toy(tmp_path, out)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "best_config.json").read_text())["TARGET"] == "pynq"
    import pandas as pd
    assert set(pd.read_parquet(out / "results.parquet")["TARGET"]) == {"pynq"}

    # the same study resumes into its folder; another study's is refused in one line, untouched
    again = run_toy(tmp_path, out, trials=3)
    assert again.returncode == 0, again.stderr
    before = sorted(p.name for p in out.iterdir())
    other = run_toy(tmp_path, out, name="other")
    assert other.returncode == 2
    assert other.stderr.strip() == (f"vta-dse: error: --out {out} holds the results of study 'cli', not 'other'; "
                                    f"choose another --out (or remove that folder)")
    assert sorted(p.name for p in out.iterdir()) == before


def test_out_folder_with_foreign_files_is_refused(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = run_toy(tmp_path, out)
    assert res.returncode == 2
    assert res.stderr.strip().endswith("is not empty and holds no vta-dse results; choose a new or empty folder")


def test_nothing_feasible_exits_3(tmp_path):
    out = tmp_path / "out"
    path = write_study(tmp_path, STUDY.format(name="tight", trials=2, sleep=0).replace(
        'board = "pynq"', "bram = 1"), "tight.toml")
    res = vta_dse("run", path, "--evaluator", TOY, "--out", out, "--workers", "1", "--quiet", timeout=300)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "no feasible configuration found" in res.stdout
    assert (out / "results.parquet").is_file() and not (out / "best_config.json").exists()


def _proc_tree(root: int) -> dict[int, str]:
    from dse._watchdog import ray_descendants
    return ray_descendants(root, skip=-1)


def _start_and_wait(tmp_path, out, name):
    path = write_study(tmp_path, STUDY.format(name=name, trials=8, sleep=300), f"{name}.toml")
    cmd = [sys.executable, "-m", "dse", "run", str(path), "--evaluator", TOY, "--out", str(out), "--workers", "2",
           "--quiet"]
    proc = subprocess.Popen(cmd, env=subprocess_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if complete_trials(out) >= 2:
            return proc, cmd
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the study never finished 2 trials")


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _gone_within(pids: dict, seconds: float) -> list[int]:
    from dse._watchdog import _signal_alive
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and _signal_alive(pids, None):
        time.sleep(0.1)
    return _signal_alive(pids, None)


def test_sigterm_stops_like_ctrl_c_writes_outputs_and_resumes(tmp_path):
    out = tmp_path / "out"
    proc, cmd = _start_and_wait(tmp_path, out, "term")
    ray_procs = _proc_tree(proc.pid)
    assert any("raylet" in open(f"/proc/{p}/cmdline").read() for p in ray_procs if os.path.exists(f"/proc/{p}"))
    try:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "interrupted: run the same command again to resume" in stdout
    assert "SIGTERM received" not in stderr and "Traceback" not in stderr, stderr
    for name in ("results.parquet", "results.csv", "trials.parquet", "report.html"):
        assert (out / name).is_file(), name
    assert _gone_within(ray_procs, 10) == [], "Ray processes outlived the driver"
    res = subprocess.run(cmd, env=subprocess_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    done = re.search(r"study term: (\d+) complete trials(?: \((\d+) scored exactly from the schedule tables\))?",
                     res.stdout)
    assert done and int(done.group(1)) - int(done.group(2) or 0) == 8, res.stdout     # the budget, completed


def test_sigkill_of_the_driver_leaves_no_ray_process_behind(tmp_path):
    proc, _ = _start_and_wait(tmp_path, tmp_path / "out", "kill")
    ray_procs = _proc_tree(proc.pid)
    assert len(ray_procs) >= 3           # gcs, raylet, workers, agents
    assert any(b"dse._isolation" in _cmdline(p) for p in ray_procs)     # and the workers' candidate processes
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    try:
        assert _gone_within(ray_procs, 10) == [], "Ray processes outlived the killed driver"
    finally:
        for pid in ray_procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def test_knobs_read_back_go_straight_into_workloads_build(tmp_path):
    """A list-valued knob is stored as JSON text (parquet and CSV alike); dse.read_results gives
    it back as a list, so a row's knobs rebuild its candidate."""
    import hwconfigs
    import simulator
    from compiler import workloads
    from dse import read_results, row_knobs
    from dse._read import knob_columns
    from dse._tables import results_frame

    env = hwconfigs.get_env()
    layer = workloads.resnet18()["C8"]
    knobs = workloads.check_knobs(layer, env, {"tile_h": [1, 14], "tile_w": [1, 14], "tile_ci": [16, 1],
                                               "tile_co": [4, 4], "oc_nthread": 2})
    base = {"trial": 0, "layer_count": 1, "candidate": 0, "attempt": 1, "mode": "count", "status": "ok"}
    frame = results_frame([{**base, "workload": "C8", "knobs": knobs}, {**base, "workload": "fc", "knobs": {}}])
    frame.to_parquet(tmp_path / "results.parquet", index=False)
    frame.to_csv(tmp_path / "results.csv", index=False)
    expected = simulator.run(workloads.build(layer, env=env, knobs=knobs), count_only=True).cycles
    for path in (tmp_path, tmp_path / "results.csv"):
        table = read_results(path)
        assert row_knobs(table.iloc[0]) == row_knobs(table.iloc[0], knob_columns(table))
        back = row_knobs(table.iloc[0])
        assert back == knobs and isinstance(back["tile_h"], list)
        assert simulator.run(workloads.build(layer, env=env, knobs=back), count_only=True).cycles == expected
        assert row_knobs(table.iloc[1], knob_columns(table)) == {}


@pytest.mark.parametrize("base, board, target", [("default", "pynq", "pynq"), ("sim", "ultra96", "ultra96"),
                                                 ("ultra96", "ultra96", "ultra96"), ("pynq", None, "pynq"),
                                                 ("default", "sim", "sim"), ("ultra96", "pynq", None)])
def test_the_board_sets_the_base_target_unless_the_base_names_another_board(base, board, target):
    from dse import StudyError, parse_study
    from tests.dse._toy import ToyEvaluator

    doc = {"study": {"base": base}, "workloads": [{"op": "toy_gemm", "m": 4, "n": 64, "k": 128}]}
    if board:
        doc["constraints"] = {"board": board}
    if target is None:
        with pytest.raises(StudyError, match=f"board = '{board}' but \\[study\\] base targets TARGET = '{base}'"):
            parse_study(doc, "s.toml", ToyEvaluator().ops)
    else:
        assert parse_study(doc, "s.toml", ToyEvaluator().ops).base.TARGET == target


def test_show_on_a_running_study_reads_its_storage(tmp_path):
    """`vta-dse show` on a study still running lists the trials told so far (live from the storage)."""
    path = write_study(tmp_path, STUDY.format(name="live", trials=8, sleep=300))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "dse", "run", str(path), "--evaluator", TOY, "--out", str(out),
                             "--workers", "2", "--quiet"], env=subprocess_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not complete_trials(out):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        shown = subprocess.run([sys.executable, "-m", "dse", "show", str(out)], env=subprocess_env(), cwd=REPO,
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert "running (live from its storage" in shown.stdout and "complete" in shown.stdout
        assert "best 10 so far by latency" in shown.stdout
    finally:
        os.kill(proc.pid, signal.SIGTERM)        # stops like Ctrl-C: its outputs are written
        try:
            proc.communicate(timeout=180)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

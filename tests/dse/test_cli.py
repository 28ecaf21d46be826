"""`vta-dse run` / `show` as a user types them: errors, SIGKILL and resume, the show listing."""
import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest

from tests.dse.conftest import REPO, TOY, TOY_SPACE, complete_trials, sampled, stored_rows, subprocess_env, write_study

SLOW_STUDY = """
[study]
name = "killme"
seed = 5
n_trials = 8
verify = "none"
""" + TOY_SPACE


def vta_dse(*args, **kw):
    return subprocess.run([sys.executable, "-m", "dse", *map(str, args)], capture_output=True, text=True,
                          env=subprocess_env(), cwd=REPO, **kw)


def test_malformed_study_file_is_a_clear_error(tmp_path):
    path = write_study(tmp_path, SLOW_STUDY.format(sleep=0).replace("n_trials", "n_trails"))
    res = vta_dse("run", path, "--evaluator", TOY, "--out", tmp_path / "out")
    assert res.returncode == 2
    assert "unknown key 'n_trails' in" in res.stderr and "did you mean 'n_trials'?" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("url, message", [
    ("not a url", "is not a database URL"),
    ("nosuchdb://x/y", "unknown database backend 'nosuchdb'"),
    ("sqlite:////no/such/folder/study.db", "folder '/no/such/folder' does not exist"),
    ("postgresql://me:secret@127.0.0.1:1/db", "cannot open storage 'postgresql://me:\\*\\*\\*@127.0.0.1:1/db'|"
                                              "driver is not installed"),
])
def test_bad_storage_url_is_a_clear_error(tmp_path, url, message):
    import re
    path = write_study(tmp_path, SLOW_STUDY.format(sleep=0))
    res = vta_dse("run", path, "--evaluator", TOY, "--out", tmp_path / "out", "--storage", url, "--workers", "1")
    assert res.returncode == 2, res.stderr
    assert re.search(message, res.stderr), res.stderr
    assert "secret" not in res.stderr and "Traceback" not in res.stderr


def _complete(out):
    st = optuna.load_study(study_name="killme", storage=f"sqlite:///{out / 'study.db'}")
    return st, [t for t in st.trials if t.state.name == "COMPLETE"]


def _running(out) -> bool:
    try:
        st = optuna.load_study(study_name="killme", storage=f"sqlite:///{out / 'study.db'}")
        # a trial the driver asked (an exact fill, written whole, is never one)
        return any(t.state.name == "RUNNING" and "dse:driver" in t.system_attrs for t in st.get_trials(deepcopy=False))
    except Exception:         # the storage not created yet, or busy
        return False


def test_sigkill_mid_study_then_rerun_completes_without_loss_or_duplicates(tmp_path):
    path = write_study(tmp_path, SLOW_STUDY.format(sleep=150))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dse", "run", str(path), "--evaluator", TOY, "--out", str(out), "--workers", "2",
           "--quiet"]
    proc = subprocess.Popen(cmd, env=subprocess_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            # kill mid-trial: 3 trials told (a sampled one and its exact fills count) and
            # one open, its tables being built
            if complete_trials(out) >= 3 and _running(out):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        else:
            pytest.fail("the study never finished 3 trials with one running")
        os.kill(proc.pid, signal.SIGKILL)       # the driver, mid-study
        proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the local Ray it had started
        except ProcessLookupError:
            pass
    st, before = _complete(out)
    # killed mid-study: the sampler's budget (8) not spent; the exact fills of an explored geometry
    # come on top of it (a trial whose rows were being stored is not told: dropped on resume)
    assert len(before) >= 2 and len(sampled(before)) < 8
    # usually a trial is left RUNNING, orphaned by the kill; a trial of a geometry whose tables
    # exist completes in milliseconds, so the kill may also land between two trials
    orphaned = any(t.state.name == "RUNNING" for t in st.trials)
    before_rows = stored_rows(out)

    res = subprocess.run(cmd, env=subprocess_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    st, after = _complete(out)
    assert len(sampled(after)) == 8                                 # the budget, completed
    assert {t.number for t in before} <= {t.number for t in after}  # nothing finished was lost
    assert not any(t.state.name == "RUNNING" for t in st.trials)
    # every trial's rows: measured candidates in results, refused ones (hardware) in rejected
    df = pd.concat([pd.read_parquet(out / "results.parquet"), pd.read_parquet(out / "rejected.parquet")])
    assert set(df["trial"]) == {t.number for t in after}
    key = ["trial", "workload", "candidate", "mode", "attempt"]
    assert not df.duplicated(key).any()                             # nothing duplicated
    for t in before:                                                # finished trials' rows kept as they were
        a = before_rows[before_rows["trial"] == t.number]
        b = df[df["trial"] == t.number]
        assert len(a) == len(b) and sorted(a["latency_s"].dropna()) == sorted(b["latency_s"].dropna())
    # an orphaned trial's hardware was enqueued again
    failed = [t for t in st.trials if t.state.name == "FAIL"]
    retried = {t.user_attrs.get("dse:retry_of") for t in after}
    assert {t.number for t in failed} <= retried and (failed or not orphaned)

    shown = vta_dse("show", out)
    assert shown.returncode == 0 and "top 10 by latency" in shown.stdout and "chosen: trial" in shown.stdout
    # piped into a reader that stops early (`| head`): no traceback, exit 0
    piped = subprocess.Popen([sys.executable, "-m", "dse", "show", str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=subprocess_env(), cwd=REPO)
    piped.stdout.close()
    assert piped.wait(timeout=120) == 0 and b"Traceback" not in piped.stderr.read()

"""Real infrastructure (marked slow, run in CI): a Ray cluster started with `ray start` on
loopback, and a PostgreSQL server shared by two drivers. In CI (CI=true) a missing server is a
failure, not a skip: .ci/run installs and starts it and exports VTA_DSE_TEST_POSTGRES_URL."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest

from tests.dse.conftest import REPO, TOY, TOY_SPACE, sampled, subprocess_env, write_study

STUDY = """
[study]
name = "shared"
seed = 2
n_trials = {trials}
verify = "top"
verify_top_k = 1
""" + TOY_SPACE.replace("{sleep}", "20")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "dse", *map(str, args)], capture_output=True, text=True,
                          env=subprocess_env(), cwd=REPO, timeout=timeout)


@pytest.mark.slow
def test_study_on_a_two_node_ray_cluster(tmp_path):
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    env = subprocess_env()
    env["RAY_AUTH_MODE"] = "disabled"     # a loopback-only test cluster: no token to hand around
    nodes = [subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--port", str(port),
                               "--include-dashboard", "false", *common], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        probe = ("import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False); "
                 "print(int(ray.cluster_resources().get('CPU', 0)))")
        deadline = time.monotonic() + 90
        cpus, joined = 0, False
        while time.monotonic() < deadline and cpus < 2:
            time.sleep(1)
            res = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, env=env)
            cpus = int(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 and res.stdout.strip() else 0
            if cpus >= 1 and not joined:
                nodes.append(subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--address",
                                               address, *common], env=env, start_new_session=True,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                joined = True
        assert cpus == 2, "the two-node cluster did not come up"
        path = write_study(tmp_path, STUDY.format(trials=4))
        res = subprocess.run([sys.executable, "-m", "dse", "run", str(path), "--evaluator", TOY, "--out",
                              str(tmp_path / "out"), "--ray-address", address, "--quiet"],
                             capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
        assert res.returncode == 0, res.stderr
        df = pd.read_parquet(tmp_path / "out" / "results.parquet")
        done = re.search(r"(\d+) complete trials(?: \((\d+) scored exactly)?", res.stdout)
        assert done and int(done.group(1)) - int(done.group(2) or 0) == 4, res.stdout   # the budget
        assert set(df["trial"]) <= set(range(int(done.group(1)))) and (df["status"] == "ok").any()
        assert (tmp_path / "out" / "best_config.json").is_file()
    finally:
        for node in reversed(nodes):          # our own `ray start` processes and their children
            try:
                os.killpg(node.pid, signal.SIGTERM)
                node.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(node.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _postgres_url() -> str:
    url = os.environ.get("VTA_DSE_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("VTA_DSE_TEST_POSTGRES_URL is not set: .ci/run must start PostgreSQL and export it")
        pytest.skip("no PostgreSQL server (set VTA_DSE_TEST_POSTGRES_URL)")
    return url


SCHEMA_RACE = """
import sys
from dse._storage import open_storage
open_storage(sys.argv[1]).get_all_studies()
"""


@pytest.mark.slow
def test_drivers_started_together_on_an_empty_postgresql_database_all_open_it(tmp_path):
    import sqlalchemy

    url = _postgres_url()
    schema = f"race_{os.getpid()}_{int(time.time())}"
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    try:
        fresh = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"   # Optuna's tables not there
        procs = [subprocess.Popen([sys.executable, "-c", SCHEMA_RACE, fresh], env=subprocess_env(), cwd=REPO,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, errors
        with engine.begin() as conn:
            tables = conn.execute(sqlalchemy.text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}).scalar()
        assert tables > 5
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def _two_drivers(tmp_path, url, name):
    """Two `vta-dse run` processes of one study on ``url``, each with its own output folder."""
    # Candidates slow enough (4 x 400 ms per trial) that the second driver's Ray is up before
    # the first driver alone could finish the budget: both must take part.
    path = write_study(tmp_path, STUDY.format(trials=8).replace('name = "shared"', f'name = "{name}"')
                       .replace("sleep_ms = 20", "sleep_ms = 400"))
    cmds = [[sys.executable, "-m", "dse", "run", str(path), "--evaluator", TOY, "--out", str(tmp_path / f"out{i}"),
             "--storage", url, "--workers", "1", "--quiet"] for i in range(2)]
    procs = [subprocess.Popen(c, env=subprocess_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for c in cmds]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name=name, storage=url)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    # both stop at the shared budget (one racing ask at most); exact fills spend none of it
    assert 8 <= len(sampled(complete)) <= 9
    numbers = [t.number for t in complete]
    assert len(set(numbers)) == len(numbers)
    # both drivers took part: each sampled trial names the driver that ran it
    assert len({t.system_attrs["dse:driver"]["pid"] for t in sampled(complete)}) == 2
    # one source of truth: both folders hold every trial's rows, the same verdicts, the same answer
    key = ["trial", "workload", "mode", "candidate", "attempt"]
    for table in ("results", "trials"):
        a, b = (pd.read_parquet(tmp_path / f"out{i}" / f"{table}.parquet")
                .sort_values(key if table == "results" else ["trial"]).reset_index(drop=True) for i in range(2))
        pd.testing.assert_frame_equal(a, b, check_like=True)
    rows = pd.read_parquet(tmp_path / "out0" / "results.parquet")
    assert set(numbers) == set(rows["trial"]) | set(pd.read_parquet(tmp_path / "out0" / "rejected.parquet")["trial"])
    best = [json.loads((tmp_path / f"out{i}" / "best.json").read_text()) for i in range(2)]
    assert best[0] == best[1] and best[0]["verified"] is True


@pytest.mark.slow
def test_two_drivers_share_one_postgresql_study(tmp_path):
    _two_drivers(tmp_path, _postgres_url(), f"shared-{os.getpid()}-{int(time.time())}")


@pytest.mark.slow
def test_two_drivers_share_one_sqlite_study(tmp_path):
    _two_drivers(tmp_path, f"sqlite:///{tmp_path / 'shared.db'}", "shared-sqlite")

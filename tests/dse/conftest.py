"""Fixtures of the dse tests: study files written on the fly, one Ray session per module."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOY = "tests.dse._toy:ToyEvaluator"

# The toy co-design space shared by the command-line tests: a str.format template to append to a
# [study] section, with ``{sleep}`` the milliseconds per candidate. Twelve geometries, so that a
# budget of 8 sampled trials never runs out of new ones (the buffer points of an explored geometry
# are scored from its tables without spending the budget).
# Two toy layers of different shapes, the second counted twice: a study file's [[workloads]] to
# append to its other tables.
TOY_LAYERS = """[[workloads]]
name = "a"
op = "toy_gemm"
m = 4
n = 64
k = 128
[[workloads]]
name = "b"
op = "toy_gemm"
m = 1
n = 32
k = 256
count = 2
"""

TOY_SPACE = """[objectives]
latency = "minimize"
[hardware]
LOG_BATCH = [0, 1, 2]
LOG_BLOCK = [3, 4]
LOG_UOP_BUFF_SIZE = [14, 15]
LOG_ACC_BUFF_SIZE = {{ low = 15, high = 17 }}
[schedule]
trials_per_layer = 4
[[workloads]]
op = "toy_gemm"
m = 4
n = 64
k = 128
sleep_ms = {sleep}
"""


def write_study(tmp_path: Path, body: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray with 2 CPUs shared by a whole test module (Ray takes seconds to start)."""
    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    from dse._executor import quiet_auth_banner
    with quiet_auth_banner():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield ray
    ray.shutdown()


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def sampled(trials) -> list:
    """The trials the sampler proposed (not the exact fills scored from complete tables)."""
    return [t for t in trials if not t.user_attrs.get("dse:exact_fill")]


# Two real studies on the simulator evaluator, run once per session by the report and command
# tests: a small co-design study with a feasible choice, and one whose budget nothing fits.
REAL_STUDY = """
[study]
name = "{name}"
base = "default"
sampler = "tpe"
seed = 0
n_trials = {trials}
verify = "top"
verify_top_k = 1
[objectives]
latency = "minimize"
bram = "minimize"
[hardware]
LOG_BLOCK = [3, 4]
LOG_ACC_BUFF_SIZE = {{ low = 14, high = 17 }}
[schedule]
sampler = "tpe"
trials_per_layer = 4
[constraints]
board = "pynq"
{margin}
[[workloads]]
name = "fc"
op = "dense"
in_features = 256
out_features = 256
[[workloads]]
name = "conv"
op = "conv2d"
height = 14
width = 14
in_channels = 64
out_channels = 64
kernel = 3
pad = 1
"""


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory):
    """{"ok": run folder with a chosen configuration, "none": run folder where nothing was feasible}."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("real_runs")
    out = {}
    for key, name, trials, margin, status in (("ok", "report_small", 5, "", 0),
                                              ("none", "report_nofit", 3, "margin = 0.9", 3)):
        study = write_study(root, REAL_STUDY.format(name=name, trials=trials, margin=margin), f"{name}.toml")
        res = subprocess.run([sys.executable, "-m", "dse", "run", str(study), "--out", str(root / name),
                              "--workers", "1", "--quiet"], capture_output=True, text=True, env=subprocess_env(),
                             cwd=REPO, timeout=600)
        assert res.returncode == status, res.stdout + res.stderr
        out[key] = root / name
    return out


def stored_rows(out: Path, storage: str | None = None):
    """The rows of every COMPLETE trial of the study of run folder ``out`` (or of ``storage``),
    as the storage holds them, with every field the evaluator returned."""
    import pandas as pd

    from dse._results import stored_rows as rows

    return pd.DataFrame(rows(storage or f"sqlite:///{Path(out) / 'study.db'}"))


def complete_trials(out: Path) -> int:
    """How many trials the study of run folder ``out`` has told COMPLETE so far (0 while its
    storage is not created yet, or busy)."""
    import optuna

    try:
        url = f"sqlite:///{Path(out) / 'study.db'}"
        if not (Path(out) / "study.db").is_file():
            return 0
        (summary,) = optuna.get_all_study_summaries(storage=url)
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    except Exception:
        return 0


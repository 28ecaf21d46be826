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

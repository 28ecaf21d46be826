"""The driver's benchmarks still run on the current code (they read what the driver stores): a
few trials each, figures not judged (benchmarks print figures; tests never time anything)."""
import subprocess
import sys

import pytest

from tests.dse.conftest import REPO, subprocess_env


def _bench(*args, timeout=600):
    res = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=subprocess_env(),
                         cwd=REPO, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_storage_cpu_prints_both_layouts():
    out = _bench("benchmarks/storage_cpu.py", "--rounds", "1", "--trials", "3")
    assert "stored / per-field:" in out and "ms of driver CPU per hardware trial" in out


@pytest.mark.slow
def test_dse_throughput_prints_the_scaling():
    out = _bench("benchmarks/dse_throughput.py", "--evaluator", "tests.dse._toy:ToyEvaluator", "--sleep-ms", "5",
                 "--rounds", "1", "--trials", "2", "--per-layer", "4", "--no-ceiling")
    assert "scaling efficiency 1 -> 2 workers" in out and "workers busy" in out

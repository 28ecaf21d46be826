"""A study measured on a board (``runner = "board"``, a board server on loopback over the simulated
device, shared by 2 Ray workers) gives the same rows as the same study on the local simulator
(``runner = "full"``): the same candidates, counters, cycles, latencies and statuses, searched and
verified alike."""
from __future__ import annotations

import os

import pandas as pd
import pytest

from dse import load_study
from dse._columns import COUNTERS
from dse._driver import RunOptions, run_study
from dse.evaluate import SimulatorEvaluator
from tests.dse.conftest import write_study

pytestmark = pytest.mark.slow

TOKEN = "board-study-token-0123456789"
STUDY = """
[study]
name = "{name}"
sampler = "grid"
seed = 5
n_trials = 2
verify = "top"
verify_top_k = 1
runner = "{runner}"
{board_keys}
[objectives]
latency = "minimize"
[hardware]
LOG_ACC_BUFF_SIZE = {acc}
[schedule]
sampler = "random"
trials_per_layer = 3
[[workloads]]
name = "conv"
op = "conv2d"
height = 8
width = 8
in_channels = 32
out_channels = 32
kernel = 3
pad = 1
[[workloads]]
name = "fc"
op = "dense"
in_features = 64
out_features = 32
"""
SAME = ["status", *COUNTERS, "cycles", "latency_s", "correct", "chosen", "verified"]


@pytest.fixture(scope="module")
def board():
    from dse.board import BoardServer, SimDevice

    with BoardServer(SimDevice(), TOKEN, port=0).start() as server:
        yield server


def _run(tmp_path, name, runner, acc, board_keys=""):
    path = write_study(tmp_path, STUDY.format(name=name, runner=runner, board_keys=board_keys, acc=acc),
                       f"{name}.toml")
    spec = load_study(path, SimulatorEvaluator.ops, resolve=SimulatorEvaluator().resolve)
    out = tmp_path / name
    summary = run_study(spec, SimulatorEvaluator(), RunOptions(out=out, workers=2, progress=False))
    rows = pd.read_parquet(out / "results.parquet")
    return summary, rows.sort_values(["trial", "workload", "candidate", "mode"]).reset_index(drop=True)


# On LOG_ACC_BUFF_SIZE = 16 the ALU's source factors (accumulator-wide) sit at other bits than
# GEMM's: the board runs the program's bytes, so this case holds the raw decode to the Program run.
@pytest.mark.parametrize("acc", ["[17, 18]", "[16, 17]"])
def test_a_board_study_gives_the_local_simulators_rows(ray_session, board, tmp_path, acc):
    token = tmp_path / "board.token"
    token.write_text(TOKEN + "\n")
    os.chmod(token, 0o600)
    local, local_rows = _run(tmp_path, "local", "full", acc)
    keys = f'boards = ["{board.address}"]\nboard_token_file = "{token.name}"'
    served, board_rows = _run(tmp_path, "board", "board", acc, keys)
    assert set(local_rows["mode"]) == {"full"} and set(board_rows["mode"]) == {"board"}
    assert (board_rows["status"] == "ok").any() and board_rows.loc[board_rows["status"] == "ok", "wall_s"].gt(0).all()
    where = ["trial", "workload", "candidate", "LOG_ACC_BUFF_SIZE"]
    pd.testing.assert_frame_equal(board_rows[where + SAME], local_rows[where + SAME], check_dtype=False)
    assert served.best["latency_s"] == local.best["latency_s"] and served.best["trial"] == local.best["trial"]
    assert served.best["verified"] is True
    # the report shows the board study's chosen layers as it shows a simulated study's
    from dse._report import chosen_layers, load_run

    assert {layer["mode"] for layer in chosen_layers(load_run(tmp_path / "board"))} == {"board"}
    assert len(chosen_layers(load_run(tmp_path / "board"))) == len(chosen_layers(load_run(tmp_path / "local"))) == 2

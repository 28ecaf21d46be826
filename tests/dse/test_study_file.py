"""Study files: the schema refuses typos, impossible ranges and unsatisfiable spaces up front."""
import pytest

from dse import StudyError, load_study
from tests.dse._toy import ToyEvaluator
from tests.dse.conftest import write_study

OPS = ToyEvaluator.ops
GOOD = """
[study]
sampler = "nsga2"
seed = 3
n_trials = 12
[objectives]
latency = "minimize"
bram = "minimize"
[hardware]
LOG_BLOCK = [3, 4]
LOG_ACC_BUFF_SIZE = { low = 15, high = 17 }
[constraints]
board = "pynq"
dsp = 200
[[workloads]]
op = "toy_gemm"
m = 1
n = 64
k = 64
"""


def load(tmp_path, body, **kw):
    return load_study(write_study(tmp_path, body), OPS, **kw)


def test_good_file_parses_with_defaults(tmp_path):
    spec = load(tmp_path, GOOD)
    assert spec.name == "study" and spec.sampler == "nsga2" and spec.seed == 3 and spec.n_trials == 12
    assert spec.objectives == (("latency", "minimize"), ("bram", "minimize"))
    assert [(k.name, k.values, k.is_range) for k in spec.hardware] == [
        ("LOG_BLOCK", (3, 4), False), ("LOG_ACC_BUFF_SIZE", (15, 16, 17), True)]
    assert dict(spec.constraints) == {"bram": 140, "dsp": 200, "lut": 53200}
    assert spec.verify == "top" and spec.trials_per_layer == 16
    assert spec.workloads[0].param_dict == {"m": 1, "n": 64, "k": 64, "sleep_ms": 0, "fault": ""}
    assert load(tmp_path, GOOD, trials=5).n_trials == 5


@pytest.mark.parametrize("old, new, message", [
    ("n_trials = 12", "n_trial = 12", "unknown key 'n_trial' in .*\\[study\\] \\(did you mean 'n_trials'\\?\\)"),
    ("LOG_BLOCK = [3, 4]", "LOG_BLOK = [3, 4]", "unknown key 'LOG_BLOK' .*did you mean 'LOG_BLOCK'"),
    ("[objectives]", "[objective]", "unknown key 'objective' .*did you mean 'objectives'"),
    ("bram = \"minimize\"", "bram = \"smallest\"", "bram = 'smallest' is not one of minimize, maximize"),
    ("low = 15, high = 17", "low = 17, high = 15", "LOG_ACC_BUFF_SIZE: empty range, low = 17 > high = 15"),
    ("low = 15, high = 17", "low = 15, high = 30", "LOG_ACC_BUFF_SIZE.high = 30 must be <= 24"),
    ("low = 15, high = 17", "low = 15, hi = 17", "unknown key 'hi' .*did you mean 'high'"),
    ("sampler = \"nsga2\"", "sampler = \"nsga3\"", "sampler = 'nsga3' is not one of .*did you mean 'nsga2'"),
    ("sampler = \"nsga2\"", "sampler = \"cmaes\"", "'cmaes' optimizes one objective"),
    ("n = 64", "nn = 64", "unknown key 'nn' in .*workloads.*#1.*did you mean 'n'"),
    ("op = \"toy_gemm\"", "op = \"toy_gem\"", "op = 'toy_gem' is not one of toy_gemm"),
    ("n_trials = 12", "n_trials = 0", "n_trials = 0 must be >= 1"),
    ("board = \"pynq\"", "board = \"pynqq\"", "board = 'pynqq' is not one of .*did you mean 'pynq'"),
    ("LOG_BLOCK = [3, 4]", "LOG_BLOCK = []", "LOG_BLOCK: the list of values is empty"),
])
def test_bad_file_is_refused_naming_the_key(tmp_path, old, new, message):
    assert old in GOOD
    with pytest.raises(StudyError, match=message):
        load(tmp_path, GOOD.replace(old, new))


def test_space_without_a_buildable_configuration_is_refused(tmp_path):
    body = GOOD.replace("LOG_BLOCK = [3, 4]", "LOG_BLOCK = [7, 8]")
    with pytest.raises(StudyError, match="none of the 6 configurations of this space can be built"):
        load(tmp_path, body)


def test_malformed_toml_and_missing_file(tmp_path):
    with pytest.raises(StudyError, match="malformed TOML"):
        load(tmp_path, "[study\nname = 1")
    with pytest.raises(StudyError, match="cannot read study file"):
        load_study(tmp_path / "nope.toml", OPS)


def test_fingerprint_ignores_the_budget_but_not_the_space(tmp_path):
    a = load(tmp_path, GOOD)
    assert load(tmp_path, GOOD.replace("n_trials = 12", "n_trials = 40")).fingerprint() == a.fingerprint()
    assert load(tmp_path, GOOD.replace("[3, 4]", "[4]")).fingerprint() != a.fingerprint()


def test_shipped_studies_parse():
    from dse.evaluate import OPS as REAL_OPS
    from tests.dse.conftest import REPO

    files = sorted((REPO / "studies").glob("*.toml"))
    assert any(f.name == "default.toml" for f in files)
    for f in files:
        spec = load_study(f, REAL_OPS)
        assert spec.workloads


def test_board_margin_keeps_part_of_the_budget_free(tmp_path):
    spec = load(tmp_path, GOOD.replace("dsp = 200", "margin = 0.1"))
    assert dict(spec.constraints) == pytest.approx({"bram": 126, "dsp": 198, "lut": 47880})
    spec = load(tmp_path, GOOD.replace("dsp = 200", "margin = { lut = 0.25 }\nbram = 100"))
    assert dict(spec.constraints) == pytest.approx({"bram": 100, "dsp": 220, "lut": 39900})


@pytest.mark.parametrize("new, message", [
    ("margin = 1.0", r"margin = 1.0 must be a fraction of the budget in \[0, 1\)"),
    ("margin = -0.1", r"margin = -0.1 must be a fraction"),
    ("margin = \"ten\"", r"margin must be a number, got 'ten'"),
    ("margin = { lutt = 0.1 }", r"unknown key 'lutt' in .*margin.*did you mean 'lut'"),
    ("margin = { lut = 2 }", r"margin.lut = 2 must be a fraction"),
])
def test_bad_margin_is_refused(tmp_path, new, message):
    with pytest.raises(StudyError, match=message):
        load(tmp_path, GOOD.replace("dsp = 200", new))


def test_margin_needs_a_board(tmp_path):
    with pytest.raises(StudyError, match=r"margin is a fraction of a board's budget: set \[constraints\] board"):
        load(tmp_path, GOOD.replace('board = "pynq"', "margin = 0.1"))

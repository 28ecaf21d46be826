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


# ---- issue #16: fuzzed study files end in a StudyError naming the key, never a traceback -----

from dse.evaluate import SimulatorEvaluator  # noqa: E402

REAL = """
[study]
n_trials = 2
[[workloads]]
op = "dense"
in_features = 256
out_features = 64
"""


def load_real(tmp_path, body):
    evaluator = SimulatorEvaluator()
    return load_study(write_study(tmp_path, body), evaluator.ops, resolve=evaluator.resolve)


def test_real_evaluator_file_loads(tmp_path):
    assert load_real(tmp_path, REAL).workloads[0].param_dict["in_features"] == 256


@pytest.mark.parametrize("old, new, message", [
    ("in_features = 256", "in_features = 256\nbatch = 0", "batch = 0"),
    ("in_features = 256", 'in_features = "256"', "in_features"),
    ("in_features = 256", "in_features = 1" + "0" * 30, "in_features"),
    ('op = "dense"\nin_features = 256\nout_features = 64',
     'op = "conv2d"\nheight = 8\nwidth = 8\nin_channels = 16\nout_channels = 16\nkernel = 3\nstride = 0', "stride"),
    ('op = "dense"\nin_features = 256\nout_features = 64',
     'op = "conv2d"\nheight = 8\nwidth = 8\nin_channels = 16\nout_channels = 16\nkernel = 100', "kernel = 100"),
    ('op = "dense"\nin_features = 256\nout_features = 64',
     'op = "conv2d"\nheight = 8\nwidth = 8\nin_channels = 16\nout_channels = 16\nkernel = 30', "kernel 30 larger"),
    ('op = "dense"\nin_features = 256\nout_features = 64',
     'op = "group_conv2d"\nheight = 8\nwidth = 8\nin_channels = 64\nout_channels = 64\nkernel = 3\ngroups = 3',
     "groups = 3 does not divide"),
    ('op = "dense"\nin_features = 256\nout_features = 64',
     'op = "group_conv2d"\nheight = 8\nwidth = 8\nin_channels = 64\nout_channels = 64\nkernel = 3', "groups"),
    ('op = "dense"\nin_features = 256\nout_features = 64',
     'op = "conv2d_transpose"\nheight = 4\nwidth = 4\nin_channels = 16\nout_channels = 16\nkernel = 4\n'
     'stride = 2\noutput_padding = 2', "output_padding = 2"),
    ('op = "dense"\nin_features = 256\nout_features = 64', 'op = "resnet18"\nlayers = [5]', "layers"),
    ('op = "dense"\nin_features = 256\nout_features = 64', 'op = "resnet18"\nlayers = ["C99"]', "C99"),
    ("n_trials = 2", 'n_trials = 2\nbase = "de\\u0000fault"', "base"),
    ("n_trials = 2", 'n_trials = 2\nbase = "' + "x" * 300 + '"', "base"),
    ("n_trials = 2", 'n_trials = 2\nbase = "' + "x" * 300 + '.json"', "base"),
    ("n_trials = 2", "n_trials = 2\nbase = 5", "base"),
    ("n_trials = 2", "n_trials = 2\nbase = { LOG_BLOCK = 4 }", "base"),
    ("n_trials = 2", "n_trials = 2\ntimeout = 1" + "0" * 400, "timeout"),
    ("n_trials = 2", "n_trials = 2\ntimeout = inf", "timeout"),
    ("n_trials = 2", "n_trials = 2\ncandidate_timeout = inf", "candidate_timeout"),
    ("n_trials = 2", "n_trials = 2\ncandidate_timeout = nan", "candidate_timeout"),
    ("n_trials = 2", "n_trials = 2\nseed = " + str(2 ** 40), "seed"),
    ("n_trials = 2", "n_trials = " + str(10 ** 30), "n_trials"),
    ("n_trials = 2", 'n_trials = 2\nname = "a\\u0000b"', "name"),
])
def test_values_the_op_library_or_the_run_would_refuse_are_refused_at_load(tmp_path, old, new, message):
    assert old in REAL
    with pytest.raises(StudyError, match=message):
        load_real(tmp_path, REAL.replace(old, new))


@pytest.mark.parametrize("content", [
    b"# caf\xe9\n" + REAL.encode(), REAL.encode() + b"\xff", b"a = " + b"[" * 5000 + b"]" * 5000,
    b"x = 1" + b"0" * 5000,
])
def test_unreadable_bytes_are_study_errors(tmp_path, content):
    path = tmp_path / "s.toml"
    path.write_bytes(content)
    with pytest.raises(StudyError):
        load_study(path, SimulatorEvaluator.ops)


@pytest.mark.parametrize("setup", ["file", "under_file", "not_creatable"])
def test_out_that_cannot_be_a_folder_is_refused(tmp_path, setup):
    from dse._study import check_out_dir

    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = {"file": blocker, "under_file": blocker / "sub" / "dir", "not_creatable": tmp_path / ("x" * 300)}[setup]
    with pytest.raises(StudyError, match="--out"):
        check_out_dir(out)


def test_cli_prints_one_error_line_for_a_bad_study(tmp_path, capsys):
    from dse.cli import main

    path = tmp_path / "s.toml"
    path.write_bytes(b"# \xff\n" + REAL.encode())
    code = main(["run", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("vta-dse: error: ") and err.count("\n") == 1 and "Traceback" not in err
    path.write_text(REAL.replace("in_features = 256", "in_features = 256\nbatch = 0"))
    code = main(["run", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("vta-dse: error: ") and "batch" in err


NEW_OPS = """
[study]
n_trials = 2
[[workloads]]
op = "group_conv2d"
height = 8
width = 8
in_channels = 64
out_channels = 64
kernel = 3
pad = 1
groups = 4
[[workloads]]
op = "conv2d_transpose"
height = 4
width = 4
in_channels = 32
out_channels = 16
kernel = 4
stride = 2
pad = 1
output_padding = 1
"""


def test_grouped_and_transposed_conv_workloads_evaluate_counted_and_verified(tmp_path):
    from dse._protocol import make_task

    evaluator = SimulatorEvaluator()
    spec = load_real(tmp_path, NEW_OPS)
    assert [w.op for w in spec.workloads] == ["group_conv2d", "conv2d_transpose"]
    for workload in spec.workloads:
        knobs = evaluator.seed_knobs(workload, spec.base)[-1]   # the fallback
        counted = evaluator.evaluate(make_task(spec.base, workload, knobs, "count"))
        full = evaluator.evaluate(make_task(spec.base, workload, knobs, "full"))
        assert counted["status"] == full["status"] == "ok" and full["correct"] is True
        assert counted["gemm_counter"] == full["gemm_counter"] > 0 and counted["cycles"] == full["cycles"]

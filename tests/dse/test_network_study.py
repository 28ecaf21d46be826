"""Co-design over built-in networks and imported ONNX models (issue #20) end to end: a study's
``network`` and ``onnx`` workloads expand into their layers, tables, baseline and report as a
ResNet-18 study does."""
from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

import hwconfigs
import simulator
from compiler import workloads
from dse import StudyError, load_study
from dse._driver import RunOptions, run_study
from dse.evaluate import SimulatorEvaluator, _layer
from tests.dse.conftest import write_study

MOBILENET = """
[study]
name = "mobilenet"
base = "pynq"
sampler = "tpe"
n_trials = 3
verify = "top"
verify_top_k = 1
[objectives]
latency = "minimize"
bram = "minimize"
[hardware]
LOG_ACC_BUFF_SIZE = [16, 17]
[schedule]
sampler = "random"
trials_per_layer = 3
[constraints]
board = "pynq"
[[workloads]]
{workload}
"""


def _study(tmp_path, body):
    return load_study(write_study(tmp_path, body), SimulatorEvaluator.ops, resolve=SimulatorEvaluator().resolve)


def test_a_network_study_expands_into_its_layers_with_counts(tmp_path):
    spec = _study(tmp_path, MOBILENET.format(workload='op = "network"\nname = "mobilenet_g"'))
    resolved = SimulatorEvaluator().resolve(spec.workloads)
    layers = workloads.network("mobilenet_g")
    assert [(w.name, w.count) for w in resolved] == [(l.name, l.count) for l in layers]
    assert [_layer(w.op, w.params) for w in resolved] == [dataclasses.replace(l, name="", count=1) for l in layers]


def test_network_study_errors_name_the_workload(tmp_path):
    body = MOBILENET.format(workload='op = "network"\nname = "mobilenet"')
    with pytest.raises(StudyError, match=r"unknown network 'mobilenet' \(did you mean 'mobilenet_g'\?\)"):
        _study(tmp_path, body)
    body = MOBILENET.format(workload='op = "network"\nname = "dcgan"\nlayers = ["CT9"]')
    with pytest.raises(StudyError, match=r"dcgan has no layer 'CT9'.*layers: CT1, CT2, CT3"):
        _study(tmp_path, body)


@pytest.mark.slow
def test_codesign_over_three_mobilenet_g_layers(ray_session, tmp_path):
    """Tables, the stock baseline (TopHub's grouped-conv schedules), verification and the report,
    as for ResNet-18."""
    body = MOBILENET.format(workload='op = "network"\nname = "mobilenet_g"\nlayers = ["D8", "D9", "C9"]')
    spec = _study(tmp_path, body)
    out = tmp_path / "out"
    summary = run_study(spec, SimulatorEvaluator(), RunOptions(out=out, workers=2, progress=False))
    assert summary.best is not None
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["workload"]) == {"D8", "D9", "C9"}
    assert set(df[df["status"] == "ok"]["workload"]) == {"D8", "D9", "C9"}
    verified = df[df["correct"].notna()]
    assert len(verified) and verified["correct"].all()
    base = json.loads((out / "baseline.json").read_text())
    pynq = hwconfigs.get_env("pynq")
    by_name = {layer["workload"]: layer for layer in base["layers"]}
    layers = {l.name: l for l in workloads.network("mobilenet_g")}
    d9 = by_name["D9"]
    assert d9["source"] == "upstream" and d9["knobs"] == workloads.tophub_knobs(layers["D9"], pynq)[0]
    res = simulator.run(workloads.build(layers["D9"], env=pynq, knobs=d9["knobs"]), count_only=True)
    assert d9["cycles"] == res.cycles
    assert by_name["C9"]["source"] == "table"      # TopHub never tuned MobileNet-G's pointwise convs
    assert summary.best["latency_s"] <= base["latency_s"] * (1 + 1e-12)
    assert "Against the stock configuration" in (out / "report.html").read_text()


def test_an_onnx_study_resolves_the_model_relative_to_the_study_file(tmp_path):
    from tests.workloads.onnx_models import QdqModel

    m = QdqModel((1, 16, 8, 8), -4, seed=1)
    a = m.conv(m.first, 32, 3, -5, -6, pad=1, relu=True, name="first")
    y = m.add(a, m.conv(a, 32, 3, -5, -6, pad=1, name="second"), -6, name="join")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.onnx").write_bytes(m.model(y).SerializeToString())
    body = MOBILENET.format(workload='op = "onnx"\npath = "models/tiny.onnx"\nrounding = "half_up"')
    spec = _study(tmp_path, body)
    resolved = SimulatorEvaluator().resolve(spec.workloads)
    assert [w.name for w in resolved] == ["first", "second", "join"]
    assert [w.op for w in resolved] == ["conv2d", "conv2d", "elementwise"]
    with pytest.raises(StudyError, match=r"tiny.onnx.*rounds half to even"):
        _study(tmp_path, body.replace('rounding = "half_up"', ""))
    with pytest.raises(StudyError, match=r"cannot read ONNX model .*missing.onnx"):
        _study(tmp_path, body.replace("models/tiny.onnx", "missing.onnx"))


def test_vta_dse_import_writes_the_workloads_and_refuses_bad_models_in_one_line(tmp_path, capsys):
    from dse.cli import main
    from tests.workloads.onnx_models import QdqModel

    m = QdqModel((1, 16, 8, 8), -4, seed=1)
    y = m.conv(m.first, 32, 3, -5, -6, pad=1, relu=True, name="first")
    model = tmp_path / "m.onnx"
    model.write_bytes(m.model(y).SerializeToString())
    out = tmp_path / "layers.toml"
    assert main(["import", str(model), "--rounding", "half_up", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 layer(s), 1 offloaded op(s)" in printed and "on the CPU: QuantizeLinear" in printed
    spec = _study(tmp_path, MOBILENET.format(workload="") + out.read_text().split("[[workloads]]", 1)[1])
    assert [w.name for w in spec.workloads] == ["first"]
    for argv, message in ((["import", str(model)], "rounds half to even"),
                          (["import", str(tmp_path / "none.onnx")], "cannot read ONNX model"),
                          (["import", str(out)], "not an ONNX model")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("vta-dse: error: ") and message in err and err.count("\n") == 1

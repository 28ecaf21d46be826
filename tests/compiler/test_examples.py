"""Acceptance: the ported upstream tutorials build, compute the numpy answer, give the published
counters (tutorial_counters.json) and emit exactly the streams of the runtime replays (golden)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import compiler
import hwconfigs
from tests.conftest import reference_file

from examples import convolution_opt, matrix_multiply, matrix_multiply_opt, vta_get_started

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _counters(name):
    entries = json.loads(reference_file("tutorial_counters.json").read_text())
    for e in entries:
        if e["name"] == name:
            return e["per_call_counters"]
    pytest.fail(f"{name} missing from tutorial_counters.json")


def _digest(program):
    return {"instructions": len(program), "uop_base": program.uop_base,
            "insn_sha256": hashlib.sha256(program.to_bytes()).hexdigest(),
            "uop_sha256": hashlib.sha256(program.uops.astype("<u4").tobytes()).hexdigest()}


def _golden_digest(key):
    path = GOLDEN / "tutorial_stream_digests.json"
    assert path.is_file(), f"{path} missing (written from the runtime replays of spec Appendix A)"
    return json.loads(path.read_text())[key]


def test_vta_get_started_counters_and_output():
    mod, res = vta_get_started.main(verbose=False)   # asserts the numpy answer itself
    assert res.stats == _counters("seed_vta_get_started_vadd")
    assert len(mod.program) == 8


def test_matrix_multiply_counters_output_and_stream():
    mod, res = matrix_multiply.main(verbose=False)
    assert res.stats == _counters("tvm_tutorial_matrix_multiply_simple")
    assert len(mod.program) == 56
    assert _digest(mod.program) == _golden_digest("mm")


def test_matrix_multiply_equals_golden_disassembly():
    from tests.compiler.test_runtime import golden_text
    env = hwconfigs.get_env()
    _, t = matrix_multiply.declare(env)
    mod = compiler.build(matrix_multiply.schedule(env, t), [t[0], t[1], t[5]], env=env, name="my_gemm")
    assert golden_text(mod.program) == (GOLDEN / "matrix_multiply.txt").read_text()


def test_matrix_multiply_opt_counters_output_and_stream():
    mod, result = matrix_multiply_opt.main(verbose=False)
    assert result.stats == _counters("tvm_tutorial_matrix_multiply_opt_blocked_gemm")
    assert _digest(mod.program) == _golden_digest("mmopt")


def test_convolution_opt_counters_output_and_stream():
    mod, res = convolution_opt.main(verbose=False)
    assert res.stats == _counters("tvm_tutorial_convolution_opt_resnet_c9_like")
    assert len(mod.program) == 3366
    assert _digest(mod.program) == _golden_digest("conv")


def test_lower_prints_vta_calls():
    env = hwconfigs.get_env()
    t = matrix_multiply_opt.declare(env)
    s = matrix_multiply_opt.schedule(env, t)
    text = str(compiler.lower(s, [t["data"], t["weight"], t["res"]]))
    assert "VTALoadBuffer2D(weight, i1.outer*1024 + ic.outer*16, 16, 16, 64" in text
    assert text.count("VTAUopLoopBegin(16, 1, 1, 0)") == 3
    assert "vta.coproc_sync()" in text


def test_module_save_load_roundtrip(tmp_path):
    mod, _ = matrix_multiply.main(verbose=False)
    path = tmp_path / "gemm.npz"
    mod.save(path)
    back = compiler.load(path)
    assert back.program.to_bytes() == mod.program.to_bytes()


@pytest.mark.parametrize("example, golden", [
    (vta_get_started, "vta_get_started.txt"),
    (matrix_multiply, "matrix_multiply.txt"),
    (matrix_multiply_opt, "matrix_multiply_opt.txt"),
    (convolution_opt, "convolution_opt.txt"),
], ids=["vta_get_started", "matrix_multiply", "matrix_multiply_opt", "convolution_opt"])
def test_compiled_tutorial_stream_equals_its_golden_disassembly(example, golden):
    """A refactor must not change emitted code unless it means to: a deliberate change rewrites
    the file with VTA_DSE_UPDATE_GOLDEN=1 in the same commit."""
    from tests.compiler.test_runtime import _check_golden

    mod, _ = example.main(verbose=False)
    _check_golden(golden, mod.program)

"""Golden cycle counts: a speed-up of the cycle model must not change a single number.

``timing_golden.json`` holds the full timing rows of the tutorial examples (through
``simulator.run``) and the cycles of every corpus program (through ``TimingModel.estimate`` on
``Insn`` objects, from zero tokens and from a non-zero token state). A deliberate model change
regenerates it in the same commit: the failure message prints the new figures.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import hwconfigs
from compiler.isa import Program
from simulator.timing import TimingModel
from tests.conftest import reference_file

GOLDEN = json.loads((Path(__file__).with_name("timing_golden.json")).read_text())
TOKENS = {"l2g": 1, "g2l": 2, "s2g": 1, "g2s": 1}


def _corpus():
    with open(reference_file("fsim_raw_corpus_dev.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


CORPUS = _corpus()


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_corpus_cycles_are_pinned(case):
    env = hwconfigs.get_env(**case["config"])
    program = Program.from_bytes(bytes.fromhex(case["insns_hex"]), env)
    row = TimingModel(env).estimate(program.instructions).as_row()
    assert row == GOLDEN["corpus"][case["name"]], json.dumps(row, sort_keys=True)
    with_tokens = TimingModel(env).estimate(program.instructions, initial_tokens=TOKENS).cycles
    assert with_tokens == GOLDEN["corpus_with_tokens"][case["name"]]


@pytest.mark.parametrize("name", ["conv", "mm", "mmopt", "start"])
def test_tutorial_cycles_are_pinned(name):
    from examples import convolution_opt, matrix_multiply, matrix_multiply_opt, vta_get_started

    example = {"conv": convolution_opt, "mm": matrix_multiply, "mmopt": matrix_multiply_opt,
               "start": vta_get_started}[name]
    np.random.seed(0)
    random.seed(0)
    _, res = example.main(verbose=False)
    expected = GOLDEN["examples"][name]
    got = {"cycles": res.cycles, "timing": [t.as_row() for t in res.timing]}
    assert got == expected, json.dumps(got, sort_keys=True)

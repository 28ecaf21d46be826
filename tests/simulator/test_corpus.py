"""The upstream fsim corpus: raw instruction bytes in, DRAM bytes and the seven counters out."""
from __future__ import annotations

import json

import pytest

import hwconfigs
import simulator

CORPUS = simulator.reference_path("fsim_raw_corpus_dev.jsonl")


def _cases() -> list[dict]:
    # A missing corpus must fail loudly, not silently skip every case.
    if not CORPUS.is_file():
        return [pytest.param(None, id="corpus-missing")]
    return [pytest.param(case, id=case["name"]) for case in map(json.loads, CORPUS.read_text().splitlines())
            if case]


def _load(case):
    assert case is not None, f"fsim corpus not found at {CORPUS}"
    env = hwconfigs.get_env(**case["config"])
    regions = case["dram_before"] + case["dram_after"]
    size = max(2 << 20, max(a + len(h) // 2 for a, h in regions))
    sim = simulator.Simulator(env, dram_size=size)
    for addr, data in case["dram_before"]:
        raw = bytes.fromhex(data)
        sim.dram[addr:addr + len(raw)] = memoryview(raw)
    return sim


def test_corpus_has_all_dev_cases():
    assert CORPUS.is_file(), f"fsim corpus not found at {CORPUS}"
    assert len(CORPUS.read_text().splitlines()) == 84


@pytest.mark.parametrize("case", _cases())
def test_corpus_case(case):
    sim = _load(case)
    stats = sim.execute(bytes.fromhex(case["insns_hex"]))
    assert list(stats) == list(simulator.COUNTER_NAMES)
    assert stats == case["stats"]
    for addr, data in case["dram_after"]:
        expected = bytes.fromhex(data)
        got = sim.dram[addr:addr + len(expected)].tobytes()
        if got != expected:
            first = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
            pytest.fail(f"DRAM region {addr:#x}+{len(expected)}: first mismatch at byte {addr + first:#x}: "
                        f"got {got[first]:#04x}, expected {expected[first]:#04x}")


@pytest.mark.parametrize("case", _cases())
def test_corpus_case_count_only(case):
    sim = _load(case)
    before = sim.dram.copy()
    stats = sim.execute(bytes.fromhex(case["insns_hex"]), count_only=True)
    assert stats == case["stats"]
    assert (sim.dram == before).all(), "count-only mode must not write DRAM"

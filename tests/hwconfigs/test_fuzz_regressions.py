"""Reproducers of issue #16 on hardware configs: every bad config is a ConfigError naming the key."""
from __future__ import annotations

import json

import pytest

import hwconfigs
import simulator
from compiler import workloads
from hwconfigs import ConfigError


@pytest.mark.parametrize("key, value", [
    ("TIMING_DMA_LATENCY", 10 ** 30), ("TIMING_CLOCK_MHZ", float("nan")), ("TIMING_CLOCK_MHZ", float("inf")),
    ("TIMING_DRAM_EFFICIENCY", float("-inf")), ("TIMING_PIPELINE_FILL", 1 << 62), ("TIMING_BUS_BYTES", 10 ** 400),
    ("TIMING_DRAM_EFFICIENCY", 2.0), ("LOG_BLOCK", 10 ** 5000), ("TARGET", ["sim"]), ("HW_VER", None),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_out_of_range_values_are_refused_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        hwconfigs.get_env(**{key: value})


def test_largest_legal_timing_values_still_run():
    env = hwconfigs.get_env(TIMING_DMA_LATENCY=1 << 20, TIMING_PIPELINE_FILL=1 << 20, TIMING_CLOCK_MHZ=1e-3,
                            TIMING_GEMM_II=1024, TIMING_ALU_II=1024, TIMING_FETCH_CYCLES=1024)
    res = simulator.run(workloads.build(workloads.Dense(1, 16, 16), env=env), count_only=True)
    assert res.cycles > 1 << 20


@pytest.mark.parametrize("content", [
    b"\xff\xfe\x00binary", b"[" * 100000 + b"]" * 100000, b'{"LOG_BLOCK": ' + b"7" * 4300 + b"}",
    b'{"TARGET": "sim"}', b'{"\\u0000": 1}', b"null", b"", b'{"LOG_BLOCK": 4, "LOG_BLOCK": 1e999}',
])
def test_unreadable_files_are_config_errors(tmp_path, content):
    path = tmp_path / "cfg.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError):
        hwconfigs.get_env(str(path))


def test_a_file_missing_keys_is_refused_naming_them(tmp_path):
    data = hwconfigs.resolve_config("default").to_dict()
    del data["LOG_ACC_BUFF_SIZE"], data["LOG_BATCH"], data["HW_VER"]
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"missing key\(s\) LOG_BATCH, LOG_ACC_BUFF_SIZE;"):
        hwconfigs.get_env(str(path))


def test_only_the_version_label_may_be_left_out():
    data = hwconfigs.resolve_config("pynq").to_dict()
    del data["HW_VER"]       # published build records name the hardware without it
    assert hwconfigs.HwConfig.from_dict(data) == hwconfigs.resolve_config("pynq")


@pytest.mark.parametrize("name", hwconfigs.preset_names())
def test_every_preset_has_every_key(name):
    hwconfigs.get_env(name)


@pytest.mark.parametrize("spec", ["x" * 300, "x" * 5000, "a\0b", {1: 2}, {None: 1}, 5, 2.5, b"default",
                                  ["default"], "../../etc/passwd", "nope/x.json"])
def test_bad_specs_are_config_errors(spec):
    with pytest.raises(ConfigError):
        hwconfigs.get_env(spec)


@pytest.mark.parametrize("override", [{"NOPE": 1}, {"LOG_BLOCK": "4"}, {"LOG_BLOCK": True}, {"LOG_BLOCK": 4.0}])
def test_bad_overrides_are_config_errors(override):
    with pytest.raises(ConfigError):
        hwconfigs.get_env(**override)

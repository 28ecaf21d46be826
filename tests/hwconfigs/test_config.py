import json

import pytest

import hwconfigs
from hwconfigs import ConfigError, HwConfig

UPSTREAM_TARGETS = {"default": "sim", "sim": "sim", "pynq": "pynq", "ultra96": "ultra96",
                    "zcu104": "zcu104", "de10nano": "de10nano", "tsim": "tsim", "intelfocl": "intelfocl"}


@pytest.mark.parametrize("name", sorted(UPSTREAM_TARGETS))
def test_every_upstream_preset_loads_with_the_upstream_geometry(name):
    env = hwconfigs.get_env(name)
    assert env.TARGET == UPSTREAM_TARGETS[name]
    assert env.bitstream == "1x16_i8w8a32_15_15_18_17"
    assert env.MODEL == f"{UPSTREAM_TARGETS[name]}_1x16_i8w8a32_15_15_18_17"


def test_default_derived_values_match_the_spec():
    env = hwconfigs.get_env()
    assert (env.BATCH, env.BLOCK_IN, env.BLOCK_OUT) == (1, 16, 16)
    assert (env.inp_dtype, env.wgt_dtype, env.acc_dtype, env.out_dtype) == ("int8", "int8", "int32", "int8")
    assert (env.INP_ELEM_BYTES, env.WGT_ELEM_BYTES, env.ACC_ELEM_BYTES, env.OUT_ELEM_BYTES) == (16, 256, 64, 16)
    assert (env.UOP_BUFF_SIZE, env.INP_BUFF_SIZE, env.WGT_BUFF_SIZE, env.ACC_BUFF_SIZE, env.OUT_BUFF_SIZE) == (
        32768, 32768, 262144, 131072, 32768)
    assert (env.UOP_DEPTH, env.INP_DEPTH, env.WGT_DEPTH, env.ACC_DEPTH, env.OUT_DEPTH) == (8192, 2048, 1024, 2048, 2048)
    assert (env.inp_scope, env.wgt_scope, env.acc_scope) == ("local.inp_buffer", "local.wgt_buffer", "local.acc_buffer")
    assert (env.dma_copy, env.alu) == ("dma_copy", "alu")
    assert env.LOG_OUT_BUFF_SIZE == 15
    assert env.BUS_WIDTH == 64 and env.fpga.freq_mhz == 100
    assert hwconfigs.get_env("ultra96").BUS_WIDTH == 128


def test_default_isa_field_positions_match_the_spec_bit_tables():
    isa = hwconfigs.get_env().isa
    assert isa.mem["dram_base"] == (26, 32) and isa.mem["y_size"] == (64, 16) and isa.mem["x_pad_1"] == (124, 4)
    assert isa.gemm["uop_end"] == (21, 14) and isa.gemm["iter_in"] == (49, 14)
    assert isa.gemm["dst_factor_out"] == (64, 11) and isa.gemm["wgt_factor_in"] == (118, 10)
    assert isa.alu["src_factor_in"] == (97, 11) and isa.alu["alu_opcode"] == (108, 3) and isa.alu["imm"] == (112, 16)
    assert isa.uop.fields == (("dst_idx", 0, 11), ("src_idx", 11, 11), ("wgt_idx", 22, 10))


def test_second_geometry_of_the_corpus_has_a_32_bit_uop():
    env = hwconfigs.get_env(LOG_BATCH=1, LOG_BLOCK=3, LOG_WGT_BUFF_SIZE=16)
    assert (env.INP_ELEM_BYTES, env.WGT_ELEM_BYTES, env.ACC_ELEM_BYTES) == (16, 64, 64)
    assert [w for _, _, w in env.isa.uop.fields] == [11, 11, 10]


def test_smaller_uop_buffer_packs_a_factor_into_word_zero_as_gcc_does():
    # With an 8-bit uop index, opcode..iter_in take 53 bits, so the 11-bit dst_factor_out still
    # fits below bit 64 and the C struct puts it there.
    env = hwconfigs.get_env(LOG_UOP_BUFF_SIZE=10)
    assert env.isa.gemm["dst_factor_out"] == (53, 11)
    assert env.isa.gemm["dst_factor_in"] == (64, 11)


def test_overrides_on_a_preset_and_json_round_trip(tmp_path):
    env = hwconfigs.get_env("pynq", LOG_BATCH=2, LOG_BLOCK=3, LOG_ACC_BUFF_SIZE=16)
    assert env.TARGET == "pynq" and env.BATCH == 4 and env.BLOCK_OUT == 8
    path = tmp_path / "cfg.json"
    env.cfg.save(path)
    assert json.loads(path.read_text()).keys() == hwconfigs.FIELDS.keys()
    assert hwconfigs.get_env(str(path)) == env
    assert HwConfig.load(path) == env.cfg


@pytest.mark.parametrize("overrides, words", [
    ({"LOG_BLOK": 3}, ["LOG_BLOK", "LOG_BLOCK"]),
    ({"LOG_BATCH": 9}, ["LOG_BATCH", "[0, 8]"]),
    ({"LOG_BATCH": "1"}, ["LOG_BATCH", "integer"]),
    ({"LOG_BATCH": True}, ["LOG_BATCH", "integer"]),
    ({"TARGET": "pnyq"}, ["TARGET", "pynq"]),
    ({"LOG_INP_BUFF_SIZE": 3}, ["LOG_INP_BUFF_SIZE", "at least 4"]),
    ({"LOG_ACC_WIDTH": 3, "LOG_INP_WIDTH": 4}, ["LOG_ACC_WIDTH", "LOG_INP_WIDTH"]),
    ({"LOG_ACC_BUFF_SIZE": 18}, ["GEMM", "128", "LOG_ACC_BUFF_SIZE <= 17"]),
    ({"LOG_UOP_BUFF_SIZE": 16}, ["GEMM", "LOG_UOP_BUFF_SIZE <= 15"]),
    ({"LOG_INP_BUFF_SIZE": 17}, ["GEMM", "LOG_INP_BUFF_SIZE <= 15"]),
    ({"LOG_WGT_BUFF_SIZE": 19, "LOG_INP_BUFF_SIZE": 14}, ["micro-op", "33 bits", "LOG_WGT_BUFF_SIZE <= 18"]),
    ({"LOG_BLOCK": 7}, ["wgt", "4096"]),
])
def test_illegal_configs_raise_one_error_naming_the_key_and_range(overrides, words):
    with pytest.raises(ConfigError) as info:
        hwconfigs.get_env(**overrides)
    for word in words:
        assert word in str(info.value)


def test_malformed_and_unknown_files_raise_config_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"LOG_BATCH": 0,,}')
    with pytest.raises(ConfigError, match="malformed JSON at line 1"):
        hwconfigs.get_env(str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        hwconfigs.get_env(str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="unknown preset 'pyqn'.*pynq"):
        hwconfigs.get_env("pyqn")
    listy = tmp_path / "list.json"
    listy.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        hwconfigs.get_env(str(listy))


def test_every_legal_geometry_in_a_sweep_has_fitting_fields():
    """Sweep the search space the DSE will use: every config accepted encodes in 128/32 bits."""
    accepted = 0
    for log_batch in range(0, 3):
        for log_block in range(3, 6):
            for acc in range(14, 19):
                for inp in range(13, 17):
                    try:
                        env = hwconfigs.get_env(LOG_BATCH=log_batch, LOG_BLOCK=log_block,
                                                LOG_ACC_BUFF_SIZE=acc, LOG_INP_BUFF_SIZE=inp)
                    except ConfigError:
                        continue
                    accepted += 1
                    assert max(env.isa.mem.bits, env.isa.gemm.bits, env.isa.alu.bits) <= 128
                    assert env.isa.uop.bits == 32
    assert accepted > 20


def test_timing_parameters_live_in_the_config_with_target_defaults(tmp_path):
    pynq, ultra96 = hwconfigs.get_env("pynq"), hwconfigs.get_env("ultra96")
    assert (pynq.timing.clock_mhz, pynq.timing.bus_bytes) == (100.0, 8)
    assert (ultra96.timing.clock_mhz, ultra96.timing.bus_bytes) == (333.0, 16)
    tuned = hwconfigs.get_env("pynq", TIMING_DMA_LATENCY=40, TIMING_DRAM_EFFICIENCY=0.75)
    assert tuned.timing.dma_latency == 40 and tuned.timing.dram_bytes_per_cycle == 6.0
    assert tuned != pynq
    path = tmp_path / "timed.json"
    tuned.cfg.save(path)
    assert hwconfigs.get_env(str(path)).timing == tuned.timing
    # a config without timing keys saves exactly upstream's keys
    assert list(pynq.cfg.to_dict()) == list(hwconfigs.FIELDS)
    with pytest.raises(ConfigError, match="TIMING_ALU_II = 0 is out of range"):
        hwconfigs.get_env(TIMING_ALU_II=0)
    with pytest.raises(ConfigError, match="did you mean 'TIMING_DMA_LATENCY'"):
        hwconfigs.get_env(TIMING_DMA_LATNCY=3)

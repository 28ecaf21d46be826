"""The 128-bit encoding: hand-written vectors from the spec's worked table, and round trips."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwconfigs
from compiler import isa
from compiler.isa import (ALU_MIN, ALU_SHR, LOAD, MEM_INP, MEM_UOP, MEM_WGT, MEM_OUT, STORE, AluInsn,
                          FinishInsn, GemmInsn, IsaError, MemInsn, Program, Uop)

DEFAULT = hwconfigs.get_env()


def words(hi: str, lo: str) -> bytes:
    """16 bytes from the spec's 'word1 : word0' hex notation."""
    return (int(hi, 16) << 64 | int(lo, 16)).to_bytes(16, "little")


# vta-spec §2.9, default config, verified upstream by execution.
SPEC_VECTORS = [
    (MemInsn(opcode=LOAD, memory_type=MEM_UOP, dram_base=0x4C00, y_size=1, x_size=1, x_stride=1),
     "0000000100010001", "0000013000000000"),
    (GemmInsn(push_prev=1, reset_reg=1, uop_bgn=0, uop_end=1, iter_out=16, iter_in=1, dst_factor_out=1),
     "0000000000000001", "00020080002000a2"),
    (MemInsn(opcode=LOAD, pop_next=1, memory_type=MEM_INP, dram_base=0x100, y_size=1, x_size=1, x_stride=1),
     "0000000100010001", "0000000400000110"),
    (MemInsn(opcode=LOAD, push_next=1, memory_type=MEM_WGT, dram_base=0x20, y_size=16, x_size=1, x_stride=16),
     "0000001000010010", "00000000800000c0"),
    (GemmInsn(pop_prev=1, push_prev=1, uop_bgn=1, uop_end=2, iter_out=16, iter_in=1, dst_factor_out=1,
              wgt_factor_out=1), "0000100000000001", "000200800040012a"),
    (MemInsn(opcode=STORE, pop_prev=1, push_prev=1, memory_type=MEM_OUT, dram_base=0x1200, y_size=1,
             x_size=16, x_stride=16), "0000001000100001", "0000004800000229"),
    (MemInsn(opcode=LOAD, pop_next=1, memory_type=MEM_INP), "0000000000000000", "0000000000000110"),
    (MemInsn(opcode=LOAD, push_next=1, memory_type=MEM_INP), "0000000000000000", "0000000000000140"),
    (MemInsn(opcode=LOAD, pop_prev=1, pop_next=1, memory_type=MEM_UOP), "0000000000000000", "0000000000000018"),
    (MemInsn(opcode=STORE, push_prev=1, memory_type=MEM_UOP), "0000000000000000", "0000000000000021"),
    (FinishInsn(), "0000000000000000", "0000000000000003"),
    (MemInsn(opcode=LOAD, pop_next=1, memory_type=MEM_INP, dram_base=0x100, y_size=8, x_size=14, x_stride=14,
             y_pad_0=1, x_pad_0=1, x_pad_1=1), "1101000e000e0008", "0000000400000110"),
    (GemmInsn(push_prev=1, uop_bgn=28, uop_end=154, iter_out=8, iter_in=7, dst_factor_out=98,
              wgt_factor_out=9, dst_factor_in=14, src_factor_in=16), "0000902000007062", "000e004013401c22"),
    (AluInsn(uop_bgn=280, uop_end=281, iter_out=1, iter_in=784, dst_factor_in=1, src_factor_in=1,
             alu_opcode=ALU_SHR, use_imm=1, imm=8), "0008b00200000800", "0620000823211804"),
    (AluInsn(push_next=1, uop_bgn=282, uop_end=283, iter_out=1, iter_in=784, dst_factor_in=1, src_factor_in=1,
             alu_opcode=ALU_MIN, use_imm=1, imm=127), "007f800200000800", "0620000823611a44"),
]


@pytest.mark.parametrize("insn, hi, lo", SPEC_VECTORS, ids=[str(v[0]) for v in SPEC_VECTORS])
def test_spec_worked_encodings(insn, hi, lo):
    raw = words(hi, lo)
    assert isa.encode(insn, DEFAULT) == raw
    assert isa.decode(raw, DEFAULT) == insn


def test_values_are_truncated_to_field_width_like_c_bitfields():
    raw = isa.encode(MemInsn(opcode=LOAD, memory_type=MEM_INP, x_size=1 << 16 | 5, y_pad_0=17), DEFAULT)
    back = isa.decode(raw, DEFAULT)
    assert back.x_size == 5 and back.y_pad_0 == 1


def test_negative_immediate_is_sign_extended_on_decode():
    raw = isa.encode(AluInsn(alu_opcode=ALU_SHR, use_imm=1, imm=-3), DEFAULT)
    assert isa.decode(raw, DEFAULT).imm == -3


GEOMETRIES = [
    hwconfigs.get_env(),
    hwconfigs.get_env(LOG_BATCH=1, LOG_BLOCK=3, LOG_WGT_BUFF_SIZE=16),
    hwconfigs.get_env(LOG_BATCH=2, LOG_BLOCK=3, LOG_INP_BUFF_SIZE=14, LOG_ACC_BUFF_SIZE=16),
    hwconfigs.get_env(LOG_UOP_BUFF_SIZE=10, LOG_BLOCK=5, LOG_WGT_BUFF_SIZE=19, LOG_ACC_BUFF_SIZE=17),
]


def _field_values(draw, env, layout, skip=()):
    return {name[:-4] if name.endswith("_dep") else name: draw(st.integers(0, (1 << width) - 1))
            for name, _, width in layout.fields if name != "opcode" and name not in skip}


@st.composite
def instructions(draw, env):
    kind = draw(st.sampled_from(["load", "store", "gemm", "alu", "finish"]))
    if kind in ("load", "store"):
        return MemInsn(opcode=LOAD if kind == "load" else STORE, **_field_values(draw, env, env.isa.mem))
    if kind == "gemm":
        return GemmInsn(**_field_values(draw, env, env.isa.gemm))
    if kind == "alu":
        fields = _field_values(draw, env, env.isa.alu)
        fields["imm"] = fields["imm"] - (1 << 16) if fields["imm"] & 0x8000 else fields["imm"]
        return AluInsn(**fields)
    return FinishInsn(pop_prev=draw(st.integers(0, 1)), push_next=draw(st.integers(0, 1)))


@pytest.mark.parametrize("env", GEOMETRIES, ids=[e.bitstream for e in GEOMETRIES])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_instructions_round_trip(env, data):
    insns = data.draw(st.lists(instructions(env), min_size=1, max_size=8))
    program = Program(env, insns)
    raw = program.to_bytes()
    assert len(raw) == 16 * len(insns)
    assert Program.from_bytes(raw, env).instructions == insns


@pytest.mark.parametrize("env", GEOMETRIES, ids=[e.bitstream for e in GEOMETRIES])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_random_uops_round_trip(env, data):
    uops = [Uop(**_field_values(data.draw, env, env.isa.uop)) for _ in range(data.draw(st.integers(1, 6)))]
    assert isa.decode_uops(isa.encode_uops(uops, env), env) == uops


def test_truncated_stream_and_unknown_opcode_are_named():
    with pytest.raises(IsaError, match="truncated after instruction 1"):
        Program.from_bytes(b"\x03" + bytes(15) + bytes(7), DEFAULT)
    with pytest.raises(IsaError, match="instruction 1: unknown opcode 7"):
        Program.from_bytes(isa.encode(FinishInsn(), DEFAULT) + b"\x07" + bytes(15), DEFAULT)


def test_disassembly_is_readable():
    text = str(Program(DEFAULT, [insn for insn, _, _ in SPEC_VECTORS[:3]]))
    assert text.splitlines()[0] == "0: LOAD UOP sram=0 dram=0x4c00 y=1 x=1 stride=1"
    assert "GEMM reset" in text and "[Pp]" in text

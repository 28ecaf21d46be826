"""Raw instruction bytes decode with each instruction's own layout. The ALU's source factors
index the accumulator (LOG_ACC_BUFF_DEPTH bits, upstream's VTAAluInsn) where GEMM's index the
input buffer (LOG_INP_BUFF_DEPTH bits): when the two depths differ, the ALU's fields sit at other
bits than GEMM's, and a raw program must run as its Program does."""
import random

import numpy as np
import pytest

import hwconfigs
import simulator
from compiler import isa, workloads
from simulator import _decode

# (INP, ACC) buffer sizes whose depths differ both ways, and the stock ones (equal depths)
CONFIGS = [dict(LOG_ACC_BUFF_SIZE=16), dict(LOG_INP_BUFF_SIZE=13, LOG_ACC_BUFF_SIZE=17),
           dict(LOG_INP_BUFF_SIZE=16, LOG_ACC_BUFF_SIZE=15), {}]


def _random_insn(rng, env):
    def fits(field):
        width = dict((n, w) for n, _, w in env.isa.alu.fields + env.isa.gemm.fields)[field]
        return rng.randrange(1 << width)

    loop = {f: fits(f) for f in ("uop_bgn", "uop_end", "iter_out", "iter_in", "dst_factor_out", "dst_factor_in")}
    flags = {f: rng.randrange(2) for f in ("pop_prev", "pop_next", "push_prev", "push_next")}
    if rng.random() < 0.5:
        widths = dict((n, w) for n, _, w in env.isa.alu.fields)
        return isa.AluInsn(**flags, **loop, reset_reg=rng.randrange(2),
                           src_factor_out=rng.randrange(1 << widths["src_factor_out"]),
                           src_factor_in=rng.randrange(1 << widths["src_factor_in"]),
                           alu_opcode=rng.randrange(5), use_imm=rng.randrange(2), imm=rng.randrange(-2 ** 15, 2 ** 15))
    widths = dict((n, w) for n, _, w in env.isa.gemm.fields)
    return isa.GemmInsn(**flags, **loop, reset_reg=rng.randrange(2),
                        **{f: rng.randrange(1 << widths[f]) for f in ("src_factor_out", "src_factor_in",
                                                                       "wgt_factor_out", "wgt_factor_in")})


@pytest.mark.parametrize("overrides", CONFIGS)
def test_bytes_decode_to_the_fields_the_objects_hold(overrides):
    env = hwconfigs.get_env(**overrides)
    rng = random.Random(str(overrides))
    insns = [_random_insn(rng, env) for _ in range(400)]
    raw = b"".join(isa.encode(i, env) for i in insns)
    objects, _ = _decode.columns_from_objects(insns)
    from_bytes = _decode.columns_from_bytes(raw, env)
    expected = _decode.encoded_columns(objects, env)
    header = [_decode.COL[c] for c in ("opcode", *_decode.FLAG_NAMES, "reset_reg")]
    for cls, fields in ((isa.GemmInsn, _decode.GEMM_FIELDS), (isa.AluInsn, _decode.ALU_FIELDS)):
        rows = [k for k, i in enumerate(insns) if type(i) is cls]
        cols = header + [_decode.COL[c] for c in fields]
        assert np.array_equal(from_bytes[np.ix_(cols, rows)], expected[np.ix_(cols, rows)]), cls.__name__
    for k in range(0, len(insns), 37):        # and the ISA's own decoder agrees field by field
        assert isa.decode(raw[16 * k:16 * k + 16], env) == insns[k]


@pytest.mark.parametrize("overrides", CONFIGS[:3])
def test_a_raw_program_runs_as_its_program(overrides):
    """Counters and every output byte of a layer with an ALU epilogue: the Program run and the
    run of its raw bytes (uops placed in DRAM as a runtime would) agree."""
    env = hwconfigs.get_env(**overrides)
    rng = random.Random(3)
    layers = [workloads.Dense(batch=1, in_features=64, out_features=32, epilogue=(("shr", 8), ("relu",))),
              workloads.Conv2D(batch=1, height=8, width=8, in_channels=32, out_channels=32, kernel=3, pad=1,
                               epilogue=(("shr", 6), ("clip", -100, 100)))]
    for layer in layers:
        for knobs in workloads.random_legal_knobs(layer, env, rng, 4):
            program = workloads.build(layer, env=env, knobs=knobs).program
            runs = []
            for code in (program, program.to_bytes()):
                sim = simulator.Simulator(env, dram_size=1 << 22)
                sim.dram[: 1 << 16] = np.frombuffer(random.Random(5).randbytes(1 << 16), dtype=np.uint8)
                sim._place_uops(program)
                stats = sim.execute(code)
                runs.append((stats, sim.dram.copy()))
            assert runs[0][0] == runs[1][0]
            assert np.array_equal(runs[0][1], runs[1][1])

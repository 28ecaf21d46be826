"""Fuzz-case generators and their oracles, shared by the property tests and ``benchmarks/fuzz.py``.

Each target is a pair: ``make_<target>(rng)`` draws one case from a ``random.Random``, and
``check_<target>(case)`` runs it and returns ``"ok"`` or ``"named"`` (a refusal with the
project's own error), raises :class:`Disagreement` / :class:`Mismatch` for a wrong answer, and
lets anything else escape (a crash). The generators favour edge values (0, 1, field maxima,
values just past a limit, huge integers, NaN, non-UTF-8 bytes) over uniform noise.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import random
import textwrap

import numpy as np

import hwconfigs
import simulator
from compiler import CompileError, isa, workloads
from compiler.isa import AluInsn, FinishInsn, GemmInsn, MemInsn, Program, Uop
from simulator import SimulationError, Simulator, WorkLimit


class Disagreement(AssertionError):
    """Two paths that must agree (count vs full, check_knobs vs build) did not."""


class Mismatch(AssertionError):
    """A run produced a wrong answer (state not restored, output differs from the reference)."""


# ---- raw programs on Simulator.execute ------------------------------------------------------

ENV = hwconfigs.get_env()
DRAM = 1 << 18
# Small limits keep every fuzzed program fast; the limits themselves are what is exercised.
LIMIT = WorkLimit(per_instruction=1 << 20, per_program=1 << 22, alu_waves=256)
UOP_DRAM = 0x8000     # byte address of the fuzzed uop words


_SANE = [False]   # set while drawing a plausible program: small values far more often


def _value(rng: random.Random, width: int, small: int = 4) -> int:
    top = (1 << width) - 1
    if _SANE[0] and rng.random() < 0.9:
        return rng.randint(0, min(small, top))
    return rng.choice([0, 1, rng.randint(0, small), rng.randint(0, small), rng.randint(0, top), top, top // 2 + 1])


def _flags(rng) -> dict:
    return {name: int(rng.random() < 0.15) for name in ("pop_prev", "pop_next", "push_prev", "push_next")}


def _random_insn(rng, env):
    kind = rng.choices(["load", "store", "gemm", "alu", "finish"], [5, 2, 2, 3, 1])[0]
    flags = _flags(rng)
    if kind in ("load", "store"):
        mtype = rng.choice([isa.MEM_UOP, isa.MEM_INP, isa.MEM_WGT, isa.MEM_ACC, isa.MEM_ACC_8BIT, isa.MEM_OUT,
                            rng.randint(0, 7)])
        if _SANE[0]:
            mtype = isa.MEM_OUT if kind == "store" else rng.choice([isa.MEM_UOP, isa.MEM_INP, isa.MEM_WGT, isa.MEM_ACC])
        dram_base = rng.choice([0, 1, UOP_DRAM // 4, rng.randint(0, 64), (1 << 32) - 1, rng.randint(0, 1 << 12)])
        if _SANE[0]:
            dram_base = UOP_DRAM // 4 if mtype == isa.MEM_UOP else rng.randint(0, 64)
        return MemInsn(opcode=isa.LOAD if kind == "load" else isa.STORE, memory_type=mtype,
                       sram_base=_value(rng, 16), dram_base=dram_base, y_size=_value(rng, 16, 3),
                       x_size=_value(rng, 16, 3), x_stride=_value(rng, 16, 4), y_pad_0=_value(rng, 4, 2) * (rng.random() < 0.2),
                       y_pad_1=_value(rng, 4, 2) * (rng.random() < 0.2), x_pad_0=_value(rng, 4, 2) * (rng.random() < 0.2),
                       x_pad_1=_value(rng, 4, 2) * (rng.random() < 0.2), **flags)
    if kind == "finish":
        return FinishInsn(**flags)
    bgn = _value(rng, 13, 3)
    end = rng.choice([bgn, bgn + 1, bgn + rng.randint(0, 4), _value(rng, 14, 4)])
    if _SANE[0]:
        end = bgn + rng.randint(0, 4)
    loop = dict(uop_bgn=bgn, uop_end=end,
                iter_out=_value(rng, 14, 4), iter_in=_value(rng, 14, 4),
                dst_factor_out=_value(rng, 11, 2), dst_factor_in=_value(rng, 11, 2),
                src_factor_out=_value(rng, 11, 2), src_factor_in=_value(rng, 11, 2), **flags)
    if kind == "gemm":
        return GemmInsn(reset_reg=int(rng.random() < 0.3), wgt_factor_out=_value(rng, 10, 2),
                        wgt_factor_in=_value(rng, 10, 2), **loop)
    return AluInsn(alu_opcode=rng.choice([0, 1, 2, 3, 4, rng.randint(0, 7 - 3 * _SANE[0])]), use_imm=rng.randint(0, 1),
                   imm=rng.choice([0, 1, -1, 8, 127, -32768, 32767, rng.randint(-40000, 40000)]), **loop)


def _serialized(rng, env) -> list:
    """A plausible program: a handful of instructions kept in order by tokens, then FINISH."""
    from tests.simulator.sim_asm import serialize

    _SANE[0] = True
    try:
        body = [dataclasses.replace(_random_insn(rng, env), pop_prev=0, pop_next=0, push_prev=0, push_next=0)
                for _ in range(rng.randint(1, 8))]
    finally:
        _SANE[0] = False
    body = [i for i in body if not isinstance(i, FinishInsn)]
    return serialize(body)


@dataclasses.dataclass
class ProgramCase:
    insns: list
    uops: np.ndarray           # uint32 words written at UOP_DRAM
    raw: bool                  # pass raw bytes (else a Program)
    garbage: tuple | None = None   # (field, value) set on the Program after construction


def make_program(rng: random.Random, env=ENV) -> ProgramCase:
    insns = _serialized(rng, env) if rng.random() < 0.6 else [_random_insn(rng, env) for _ in range(rng.randint(1, 10))]
    if rng.random() < 0.2:
        insns.insert(rng.randint(0, len(insns)), _random_insn(rng, env))
    n_uops = rng.randint(0, 12)
    layout = env.isa.uop
    words = [sum(_value(rng, w, 4) << lsb for _, lsb, w in layout.fields) for _ in range(n_uops)]
    garbage = None
    if rng.random() < 0.05:
        garbage = rng.choice([("instructions", None), ("uops", None), ("uop_base", None), ("env", None),
                              ("instructions", [None]), ("uop_base", -4), ("uop_base", 1 << 40)])
    return ProgramCase(insns, np.array(words, dtype=np.uint32), raw=rng.random() < 0.5, garbage=garbage)


def _stream(case: ProgramCase, env):
    if case.raw:
        return b"".join(isa.encode(i, env) for i in case.insns)
    program = Program(env, case.insns)
    if case.garbage:
        setattr(program, *case.garbage)
    return program


def _snapshot(sim) -> tuple:
    return (sim.tokens, sim.dram.copy(), sim.uop.copy(), sim.inp.copy(), sim.wgt.copy(), sim.acc.copy())


def _same(a, b) -> bool:
    return a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:]))


@functools.lru_cache(maxsize=4)
def _dense(env):
    layer = workloads.Dense(env.BATCH, 2 * env.BLOCK_IN, env.BLOCK_OUT)
    mod = workloads.build(layer, env=env)
    inputs = workloads.random_inputs(layer, env, seed=5)
    return layer, mod, inputs, workloads.reference(layer, *inputs, env=env)


def _dense_still_correct(sim, env) -> bool:
    layer, mod, inputs, expected = _dense(env)
    out = workloads.empty_output(layer, env)
    simulator.run(mod, *inputs, out, sim=sim)
    return bool(np.array_equal(out, expected))


def _prepared_sim(case: ProgramCase, env, rng_seed: int = 0) -> Simulator:
    sim = Simulator(env, dram_size=DRAM, work_limit=LIMIT)
    sim.dram[UOP_DRAM:UOP_DRAM + 4 * case.uops.size] = case.uops.view(np.uint8)
    rng = np.random.default_rng(rng_seed)
    sim.dram[:0x4000] = rng.integers(0, 256, 0x4000, dtype=np.uint8)
    sim.acc[:4] = 7
    return sim


def check_program(case: ProgramCase, env=ENV) -> str:
    """Execute on a prepared simulator: ok, or a named error that left the machine exactly as
    it was — and a valid Dense layer run on it afterwards still matches the reference."""
    sim = _prepared_sim(case, env)
    before = _snapshot(sim)
    try:
        sim.execute(_stream(case, env))
    except SimulationError:
        if not _same(before, _snapshot(sim)):
            raise Mismatch("a failed execute changed the machine state") from None
        if not _dense_still_correct(sim, env):
            raise Mismatch("a valid Dense run after a failed execute differs from the reference") from None
        return "named"
    return "ok"


def _data_dependent(message: str) -> bool:
    # Only a run that executes can see uop contents: out-of-range indices, the ALU wave limit.
    return "out of range (depth" in message or "alu_waves" in message


def check_modes(case: ProgramCase, env=ENV) -> str:
    """The same program count-only and full: the same counters, or the same refusal (a full run
    may additionally refuse indices only its data reveal)."""
    results = []
    for count_only in (True, False):
        sim = _prepared_sim(case, env)
        try:
            results.append(("ok", sim.execute(_stream(case, env), count_only=count_only)))
        except SimulationError as exc:
            results.append(("named", str(exc)))
    (c_kind, c_val), (f_kind, f_val) = results
    if c_kind == f_kind == "ok":
        if c_val != f_val:
            raise Disagreement(f"counters differ: count {c_val}, full {f_val}")
        return "ok"
    if c_kind == "ok" and f_kind == "named" and _data_dependent(f_val):
        return "named"
    if c_kind != f_kind:
        raise Disagreement(f"count-only {c_kind} ({c_val}), full {f_kind} ({f_val})")
    return "named"


# ---- hardware configs -------------------------------------------------------------------------

_ODD_VALUES = [None, True, -1, 0, 1, 3, 4, 5, 24, 25, 10 ** 30, 10 ** 400, -(10 ** 400), 1.5, 4.0, float("nan"),
               float("inf"), float("-inf"), 1e308, "4", "", "sim", "x" * 300, [4], {"a": 1}]


def make_config(rng: random.Random):
    """('overrides', dict) | ('spec', object) | ('file', bytes)."""
    kind = rng.choices(["overrides", "spec", "file"], [4, 2, 4])[0]
    keys = list(hwconfigs.FIELDS) + list(hwconfigs.TIMING_KEYS)
    if kind == "overrides":
        out = {}
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(keys + ["LOG_BLOK", "NOPE"])
            low, high = hwconfigs.FIELDS.get(key, (None, 0, 8))[1:] if key in hwconfigs.FIELDS else (0, 64)
            out[key] = rng.choice(_ODD_VALUES + [rng.randint(low or 0, high or 8)] * 6)
        return ("overrides", out)
    if kind == "spec":
        return ("spec", rng.choice(["default", "pynq", "ultra96", "nope", "x" * 300, "a\0b", "/", "dir/x.json",
                                    {1: 2}, {"LOG_BLOCK": 4}, 5, 2.5, b"default", ["default"], None, ""]))
    data = hwconfigs.resolve_config(rng.choice(hwconfigs.preset_names())).to_dict()
    mutation = rng.choice(["value", "drop", "extra", "binary", "deep", "digits", "truncate", "valid", "timing"])
    if mutation == "value":
        data[rng.choice(keys)] = rng.choice(_ODD_VALUES)
    elif mutation == "drop":
        del data[rng.choice(list(data))]
    elif mutation == "extra":
        data[rng.choice(["LOG_BLOK", "x" * 100, "TIMING_CLOCK"])] = 1
    elif mutation == "timing":
        data[rng.choice(list(hwconfigs.TIMING_KEYS))] = rng.choice([0, 1, 10 ** 6, 10 ** 30, 0.5, 1e-9, 1e9])
    try:
        text = json.dumps(data).encode()
    except (ValueError, OverflowError):
        text = b"{}"
    if mutation == "binary":
        pos = rng.randint(0, len(text))
        text = text[:pos] + bytes(rng.randint(128, 255) for _ in range(3)) + text[pos:]
    elif mutation == "deep":
        text = b"[" * 50000 + b"]" * 50000
    elif mutation == "digits":
        text = b'{"LOG_BLOCK": ' + b"9" * rng.choice([10, 4300, 5000]) + b"}"
    elif mutation == "truncate":
        text = text[:rng.randint(0, len(text))]
    return ("file", text)


def check_config(case, tmp_dir=None, run=True) -> str:
    """get_env: a ConfigError or an Env whose timing model runs (count-only Dense)."""
    import tempfile
    from pathlib import Path

    kind, value = case
    try:
        if kind == "overrides":
            env = hwconfigs.get_env(**value)
        elif kind == "spec":
            env = hwconfigs.get_env(value)
        else:
            with tempfile.TemporaryDirectory(dir=tmp_dir) as d:
                path = Path(d) / "cfg.json"
                path.write_bytes(value)
                env = hwconfigs.get_env(str(path))
    except hwconfigs.ConfigError:
        return "named"
    if run:
        try:
            mod = workloads.build(workloads.Dense(env.BATCH, env.BLOCK_IN, env.BLOCK_OUT), env=env)
        except CompileError:
            return "named"
        res = simulator.run(mod, count_only=True)
        if not (isinstance(res.cycles, int) and res.cycles > 0 and math.isfinite(res.seconds)):
            raise Mismatch(f"cycle model gave {res.cycles} cycles, {res.seconds} s")
    return "ok"


# ---- knob sets: check_knobs vs build -----------------------------------------------------------

GEOMETRIES = {
    "1x16": {},
    "2x8": dict(LOG_BATCH=1, LOG_BLOCK=3, LOG_WGT_BUFF_SIZE=16, LOG_ACC_BUFF_SIZE=15),
    "4x8": dict(LOG_BATCH=2, LOG_BLOCK=3, LOG_WGT_BUFF_SIZE=16, LOG_ACC_BUFF_SIZE=15),
    "1x32": dict(LOG_BLOCK=5),
    "inp16": dict(LOG_INP_WIDTH=4, LOG_WGT_WIDTH=4),
    "acc16": dict(LOG_ACC_WIDTH=4, LOG_ACC_BUFF_SIZE=16),
}


def geometry(name: str):
    return hwconfigs.get_env(**GEOMETRIES[name])


def _random_layer(rng, env, resnet: bool = True):
    b = env.BATCH
    kind = rng.choice(["resnet", "conv", "conv", "group", "transpose", "dense", "dense_bias", "ewise"] if resnet else
                      ["conv", "conv", "group", "transpose", "dense", "dense_bias", "ewise"])
    if kind == "resnet":
        return rng.choice(list(workloads.resnet18(batch=b * rng.choice([1, 1, 2])).values()))
    if kind == "conv":
        hw = rng.choice([3, 4, 5, 6, 7, 8, 9])
        k, s, p = rng.choice([1, 3, 5]), rng.choice([1, 2, 3]), rng.choice([0, 1, 2])
        k = k if k <= hw + 2 * p else 1
        epilogue = rng.choice([workloads.TUTORIAL_EPILOGUE, workloads.RESNET18_EPILOGUE, (("bias",),), ()])
        return workloads.Conv2D(b * rng.choice([1, 2]), hw, hw, env.BLOCK_IN * rng.choice([1, 2]),
                                env.BLOCK_OUT * rng.choice([1, 2, 4]), k, s, p, epilogue=epilogue)
    if kind == "group":
        hw, groups = rng.choice([3, 4, 5, 6, 7, 8]), rng.choice([1, 2, 4])
        k, s, p = rng.choice([1, 3]), rng.choice([1, 2]), rng.choice([0, 1])
        epilogue = rng.choice([workloads.TUTORIAL_EPILOGUE, workloads.RESNET18_EPILOGUE, ()])
        return workloads.GroupConv2D(b * rng.choice([1, 2]), hw, hw, env.BLOCK_IN * groups * rng.choice([1, 2]),
                                     env.BLOCK_OUT * groups * rng.choice([1, 2]), k, s, p, groups=groups,
                                     epilogue=epilogue)
    if kind == "transpose":
        hw, k, s = rng.choice([2, 3, 4, 5]), rng.choice([1, 2, 3, 4]), rng.choice([1, 2, 3])
        epilogue = rng.choice([workloads.TUTORIAL_EPILOGUE, workloads.RESNET18_EPILOGUE, ()])
        return workloads.Conv2DTranspose(b * rng.choice([1, 2]), hw, hw, env.BLOCK_IN * rng.choice([1, 2]),
                                         env.BLOCK_OUT * rng.choice([1, 2]), k, s,
                                         rng.randint(0, min(k - 1, ((hw - 1) * s + k - 1) // 2)),   # an output left
                                         output_padding=rng.randint(0, s - 1), epilogue=epilogue)
    if kind.startswith("dense"):
        epilogue = (("bias",), ("shr", 3)) if kind == "dense_bias" else workloads.TUTORIAL_EPILOGUE
        return workloads.Dense(b * rng.choice([1, 2, 4]), env.BLOCK_IN * rng.choice([1, 2, 4]),
                               env.BLOCK_OUT * rng.choice([1, 2, 4]), epilogue=epilogue)
    return workloads.Elementwise(b * rng.choice([1, 2]), env.BLOCK_OUT * rng.choice([1, 2]), rng.choice([1, 2, 4]),
                                 rng.choice([1, 2, 4]), op=rng.choice(["add", "multiply"]))


def make_knobs(rng: random.Random, resnet: bool = True):
    geo = rng.choice(sorted(GEOMETRIES))
    env = geometry(geo)
    layer = _random_layer(rng, env, resnet)
    space = workloads.knob_space(layer, env)
    knobs = {name: rng.choice(values) for name, values in space.items()}
    if rng.random() < 0.05:   # API misuse: not a mapping, or a value of the wrong type
        knobs = rng.choice([list(knobs.items()), set(knobs), {**knobs, "tile_co": None},
                            {**knobs, "oc_nthread": True} if "oc_nthread" in knobs else {**knobs, "nope": 1}])
    return geo, layer, knobs


def build_unchecked(layer, env, knobs):
    """``workloads.build`` without its ``check_knobs``: what the compiler alone refuses."""
    from compiler import build as compile_schedule
    from compiler.workloads import _knobs, _templates

    k = _knobs.normalize_knobs(layer, env, knobs)
    s, args = _templates.template(layer)(layer, env, k)
    return compile_schedule(s, args, env=env, name="fuzz")


def check_knobs(case, verify_refusals: bool = True) -> str:
    """check_knobs and build (without the check) refuse the same knob sets; what builds also
    counts on the simulator."""
    geo, layer, knobs = case
    env = geometry(geo)
    try:
        workloads.check_knobs(layer, env, knobs)
        refused = None
    except CompileError as exc:
        refused = str(exc)
    if refused is not None and not verify_refusals:
        return "named"
    try:
        mod = build_unchecked(layer, env, knobs)
        simulator.run(mod, count_only=True)
        built = None
    except (CompileError, SimulationError) as exc:
        built = f"{type(exc).__name__}: {exc}"
    if (refused is None) != (built is None):
        raise Disagreement(f"{geo} {layer} knobs {knobs}: check_knobs {'accepts' if refused is None else refused!r}, "
                           f"build {'succeeds' if built is None else built!r}")
    return "ok" if refused is None else "named"


# ---- epilogue layers: full run vs reference ---------------------------------------------------

def _constant(rng, name: str) -> int:
    if name == "shr":
        return rng.choice([0, 1, 8, 31, 32, -1, rng.randint(0, 31), rng.randint(0, 31)])
    return rng.choice([0, 1, -1, 127, -128, 32767, -32768, 32768, -32769, 40000, 1 << 70,
                       rng.randint(-32768, 32767), rng.randint(-32768, 32767), rng.randint(-200, 200)])


def make_epilogue(rng: random.Random):
    steps = []
    for _ in range(rng.randint(0, 4)):
        name = rng.choice(["add", "shr", "max", "min", "relu", "clip", "bias"])
        if name in ("relu", "bias"):
            steps.append((name,))
        elif name == "clip":
            steps.append((name, _constant(rng, name), _constant(rng, name)))
        else:
            steps.append((name, _constant(rng, name)))
    geo = rng.choice(["1x16", "2x8", "inp16", "acc16"])
    kind = rng.choice(["dense", "conv", "ewise"])
    return geo, kind, tuple(steps), rng.randint(0, 1 << 16)


def check_epilogue(case) -> str:
    """Refused at construction (or by check_knobs), or the full run equals the reference and
    ``simulator.run`` count-only gives the full run's counters and cycles."""
    geo, kind, epilogue, seed = case
    env = geometry(geo)
    b = env.BATCH
    try:
        if kind == "dense":
            layer = workloads.Dense(b, 2 * env.BLOCK_IN, env.BLOCK_OUT, epilogue=epilogue)
        elif kind == "conv":
            layer = workloads.Conv2D(b, 4, 4, env.BLOCK_IN, env.BLOCK_OUT, 3, 1, 1, epilogue=epilogue)
        else:
            layer = workloads.Elementwise(b, env.BLOCK_OUT, 2, 2, op="multiply" if seed % 2 else "add",
                                          epilogue=epilogue)
        knobs = workloads.fallback_knobs(layer, env)
        if "bias_dtype" in knobs and seed % 3 == 0:
            knobs["bias_dtype"] = "int8"
        mod = workloads.build(layer, env=env, knobs=knobs)
    except CompileError:
        return "named"
    inputs = workloads.random_inputs(layer, env, seed, knobs)
    out = workloads.empty_output(layer, env)
    full = simulator.run(mod, *inputs, out)
    if not np.array_equal(out, workloads.reference(layer, *inputs, env=env)):
        raise Mismatch(f"{geo} {layer}: the simulator's output differs from workloads.reference")
    count = simulator.run(mod, count_only=True)   # simulator.run's private count-only path
    if (count.stats, count.cycles) != (full.stats, full.cycles):
        raise Disagreement(f"{geo} {layer}: count-only {count.stats} {count.cycles} cycles, "
                           f"full {full.stats} {full.cycles} cycles")
    return "ok"


# ---- study files -----------------------------------------------------------------------------

STUDY = textwrap.dedent("""\
    # a fuzzed study
    [study]
    name = "fuzz"
    base = "default"
    sampler = "tpe"
    seed = 1
    n_trials = 4
    candidate_timeout = 60
    [objectives]
    latency = "minimize"
    [hardware]
    LOG_BLOCK = [3, 4]
    LOG_ACC_BUFF_SIZE = { low = 15, high = 17 }
    [schedule]
    trials_per_layer = 4
    [constraints]
    board = "pynq"
    [[workloads]]
    op = "dense"
    batch = 1
    in_features = 256
    out_features = 64
    [[workloads]]
    op = "conv2d"
    height = 14
    width = 14
    in_channels = 32
    out_channels = 32
    kernel = 3
    stride = 1
    pad = 1
    [[workloads]]
    op = "resnet18"
    layers = ["C2"]
    """)

_TOML_VALUES = ["0", "-1", "1", "2", "5", "100", "1" + "0" * 30, "1" + "0" * 400, "inf", "-inf", "nan", "1.5",
                "true", '"256"', '""', '"x"', '"' + "x" * 300 + '"', '"a\\u0000b"', "[]", "[5]", '["C99"]', "{}",
                "{ low = 3, high = 1 }", str(2 ** 40), str(2 ** 63), "1e400", '"default"', '"pynq.json"',
                '"/nonexistent/x.json"', '"' + "y" * 300 + '.json"']


def make_study(rng: random.Random) -> bytes:
    lines = STUDY.splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        line = lines[i]
        mutation = rng.choice(["value", "value", "value", "drop", "dup", "bytes", "key"])
        if mutation == "value" and "=" in line:
            lines[i] = line.split("=")[0] + "= " + rng.choice(_TOML_VALUES)
        elif mutation == "drop":
            del lines[i]
        elif mutation == "dup":
            lines.insert(i, line)
        elif mutation == "key" and "=" in line:
            lines[i] = rng.choice(["bogus", "timeout", "verify", "verify_top_k", "count", "name", "base"]) + \
                " =" + line.split("=", 1)[1]
    text = ("\n".join(lines) + "\n").encode()
    if rng.random() < 0.1:
        pos = rng.randint(0, len(text))
        text = text[:pos] + bytes([rng.randint(128, 255)]) + text[pos:]
    return text


def check_study(content: bytes, tmp_dir=None) -> str:
    import tempfile
    from pathlib import Path

    from dse import StudyError, load_study
    from dse.evaluate import SimulatorEvaluator

    evaluator = SimulatorEvaluator()
    with tempfile.TemporaryDirectory(dir=tmp_dir) as d:
        path = Path(d) / "fuzz.toml"
        path.write_bytes(content)
        try:
            load_study(path, evaluator.ops, resolve=evaluator.resolve)
        except StudyError:
            return "named"
    return "ok"


_ONNX_VALID = []


def _onnx_valid() -> bytes:
    """A small QDQ model (convs, a CPU Flatten, a dense), built once."""
    if not _ONNX_VALID:
        from tests.workloads.onnx_models import QdqModel

        m = QdqModel((1, 16, 4, 4), -3, seed=11)
        a = m.conv(m.first, 16, 3, -4, -5, pad=1, relu=True)
        b = m.conv(a, 32, 1, -4, -5)
        _ONNX_VALID.append(m.model(m.dense(m.cpu("Flatten", b), 32, -4, -5)).SerializeToString())
    return _ONNX_VALID[0]


def make_onnx(rng: random.Random) -> tuple:
    """(model bytes, rounding): a valid model's bytes flipped, cut, spliced, replaced by junk, or
    its scales and zero points drawn."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    raw = bytearray(_onnx_valid())
    how = rng.choice(["flip", "cut", "splice", "junk", "scale"])
    if how == "flip":
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
    elif how == "cut":
        raw = raw[:rng.randrange(len(raw))]
    elif how == "splice":
        at = rng.randrange(len(raw))
        raw[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif how == "junk":
        raw = bytearray(rng.randrange(256) for _ in range(rng.randint(0, 512)))
    else:
        model = onnx.load_from_string(bytes(raw))
        for tensor in model.graph.initializer:
            if tensor.name.startswith(("s", "zp")) and rng.random() < 0.3:
                value = numpy_helper.to_array(tensor)
                new = (rng.choice([0.3, -1.0, 0.0, 2.0 ** rng.randint(-20, 5), float("inf")])
                       if value.dtype.kind == "f" else rng.randint(-3, 3))
                tensor.CopyFrom(numpy_helper.from_array(np.asarray(new, dtype=value.dtype), tensor.name))
        raw = bytearray(model.SerializeToString())
    return bytes(raw), rng.choice(["exact", "half_up"])


def check_onnx(case) -> str:
    """import_onnx: an ImportedNetwork whose workload file renders, or a one-line OnnxImportError."""
    from compiler import workloads

    raw, rounding = case
    try:
        net = workloads.import_onnx(raw, rounding=rounding)
    except workloads.OnnxImportError as exc:
        if not str(exc) or "\n" in str(exc):
            raise Disagreement(f"an import error that is not one line: {exc!r}") from None
        return "named"
    net.workload_toml()
    return "ok"


TARGETS = {
    "program": (make_program, check_program),
    "modes": (make_program, check_modes),
    "config": (make_config, check_config),
    "knobs": (make_knobs, check_knobs),
    "epilogue": (make_epilogue, check_epilogue),
    "study": (make_study, check_study),
    "onnx": (make_onnx, check_onnx),
}

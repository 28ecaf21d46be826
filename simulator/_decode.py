"""Decode an instruction stream once into numpy columns, checking everything static.

Field positions come from ``env.isa`` (the single derivation in ``hwconfigs``). A raw stream is
split into fields with a handful of vectorised shifts; a ``compiler.isa.Program`` is read field
by field from its instruction objects and truncated to the field widths exactly as encoding
would, so it never pays for an encode/decode round trip. Every check that does not depend on SRAM
contents happens here, vectorised over the whole stream, before the run touches any state, so a
rejected program leaves the machine exactly as it was. Only when a check fails is the stream
walked instruction by instruction, to name the first offender.

The counters of a run never depend on data (vta-spec §4), so they are summed here too.
"""
from __future__ import annotations

import operator
import struct
from itertools import starmap

import numpy as np

from compiler import isa
from compiler.isa import AluInsn, FinishInsn, GemmInsn, MemInsn

from . import _counters as C
from ._errors import SimulationError
from ._limits import DEFAULT_WORK_LIMIT, cells_per_iteration

LOAD_MODULE, COMPUTE_MODULE, STORE_MODULE = 0, 1, 2
MODULE_NAMES = ("load", "compute", "store")
L2G, G2L, S2G, G2S = 0, 1, 2, 3
QUEUE_NAMES = ("l2g", "g2l", "s2g", "g2s")
# (pop_prev, pop_next, push_prev, push_next) queue of each module; None: the flag has no queue
# there (upstream dereferences a null queue and crashes, vta-spec §2.2).
MODULE_QUEUES = {
    LOAD_MODULE: (None, G2L, None, L2G),
    COMPUTE_MODULE: (L2G, S2G, G2L, G2S),
    STORE_MODULE: (G2S, None, S2G, None),
}
FLAG_NAMES = ("pop_prev", "pop_next", "push_prev", "push_next")

K_NOP, K_LOAD, K_STORE, K_GEMM, K_ALU, K_FINISH = range(6)
MEM_FIELDS = ("sram_base", "dram_base", "y_size", "x_size", "x_stride",
              "y_pad_0", "y_pad_1", "x_pad_0", "x_pad_1")
LOOP_FIELDS = ("uop_bgn", "uop_end", "iter_out", "iter_in",
               "dst_factor_out", "dst_factor_in", "src_factor_out", "src_factor_in")
GEMM_FIELDS = ("reset_reg",) + LOOP_FIELDS + ("wgt_factor_out", "wgt_factor_in")
ALU_FIELDS = LOOP_FIELDS + ("alu_opcode", "use_imm", "imm")
LOAD_COUNTER = {isa.MEM_INP: C.INP_LOAD, isa.MEM_WGT: C.WGT_LOAD, isa.MEM_ACC: C.ACC_LOAD,
                isa.MEM_ACC_8BIT: C.ACC_LOAD, isa.MEM_UOP: C.UOP_LOAD}

# Every column of a stream: the header, then each layout's own fields (named as the Insn
# attributes). Loop fields sit at the same bits in the GEMM and ALU layouts.
_OBJECT_FIELDS = {
    MemInsn: FLAG_NAMES + ("opcode", "memory_type") + MEM_FIELDS,
    GemmInsn: FLAG_NAMES + GEMM_FIELDS,
    AluInsn: FLAG_NAMES + ("reset_reg",) + ALU_FIELDS,
    FinishInsn: FLAG_NAMES,
}
_GETTERS = {cls: operator.attrgetter(*names) for cls, names in _OBJECT_FIELDS.items()}
_PACKERS = {cls: struct.Struct(f"<{len(names)}q").pack for cls, names in _OBJECT_FIELDS.items()}
_CLASS_OPCODE = {GemmInsn: isa.GEMM, AluInsn: isa.ALU, FinishInsn: isa.FINISH}
_CLASS_KEY = {cls: k for k, cls in enumerate(_OBJECT_FIELDS)}
COLUMNS = ("opcode",) + FLAG_NAMES + ("memory_type",) + MEM_FIELDS + GEMM_FIELDS + ALU_FIELDS[-3:]


COL = {name: k for k, name in enumerate(COLUMNS)}
_OBJECT_ROWS = {cls: np.array([COL[f] for f in names]) for cls, names in _OBJECT_FIELDS.items()}


def _attr(field: str) -> str:
    return field[:-4] if field.endswith("_dep") else field


def op_module(opcode: np.ndarray, memory_type: np.ndarray) -> np.ndarray:
    """Module of every instruction (``isa.module_of``, vectorised)."""
    load = (opcode == isa.LOAD) & ((memory_type == isa.MEM_INP) | (memory_type == isa.MEM_WGT))
    return np.where(opcode == isa.STORE, STORE_MODULE, np.where(load, LOAD_MODULE, COMPUTE_MODULE))


def _flag_table() -> list:
    """(pops, pushes) queue tuples, indexed by module * 16 + the four flags as bits; flags
    without a queue on that module are left out (the decoder rejects them separately)."""
    table = []
    for module in range(3):
        queues = MODULE_QUEUES[module]
        for bits in range(16):
            on = [(bits >> (3 - f)) & 1 for f in range(4)]
            table.append((tuple(queues[f] for f in (0, 1) if on[f] and queues[f] is not None),
                          tuple(queues[f] for f in (2, 3) if on[f] and queues[f] is not None)))
    return table


FLAG_TABLE = _flag_table()
POPS = [entry[0] for entry in FLAG_TABLE]
PUSHES = [entry[1] for entry in FLAG_TABLE]
_FLAG_WEIGHTS = np.array([8, 4, 2, 1], dtype=np.int64)


def flag_codes(table: np.ndarray, module: np.ndarray) -> np.ndarray:
    """Index into ``FLAG_TABLE`` of every instruction (a set flag is any non-zero value)."""
    flags = table[COL["pop_prev"]:COL["push_next"] + 1] != 0
    return module * 16 + _FLAG_WEIGHTS @ flags


def as_columns(table: np.ndarray) -> dict:
    """Name -> row view of a (len(COLUMNS), n) table."""
    return dict(zip(COLUMNS, table))


# ---- columns ---------------------------------------------------------------------------
# A stream is a (len(COLUMNS), n) int64 table: one row per field, one column per instruction.

_LAYOUT_CACHE: dict = {}


def _layout(env):
    """The raw bit layouts as column extractions: ``(fields, alu_fields, masks, alu_masks)``.
    ``fields`` (column row, lsb, width) reads the header and MEM fields from the mem layout and
    the loop fields from GEMM's; ``alu_fields`` re-reads, for ALU instructions, every field the
    ALU layout places otherwise or alone: its source factors index the accumulator, so they are
    ``LOG_ACC_BUFF_DEPTH`` wide where GEMM's are ``LOG_INP_BUFF_DEPTH`` (upstream's VTAAluInsn),
    which moves them and the ALU's own fields whenever the two depths differ. ``masks`` and
    ``alu_masks`` are each column's width mask for the two."""
    key = (env.isa.mem.fields, env.isa.gemm.fields, env.isa.alu.fields)
    found = _LAYOUT_CACHE.get(key)
    if found is None:
        fields = {}
        for layout in (env.isa.mem, env.isa.gemm):
            for name, lsb, width in layout.fields:
                fields.setdefault(_attr(name), (lsb, width))
        alu = {}
        for name, lsb, width in env.isa.alu.fields:
            if fields.get(_attr(name)) != (lsb, width):
                alu[_attr(name)] = (lsb, width)
        for name in ALU_FIELDS[-3:]:
            fields.setdefault(name, alu[name])
        masks = np.array([(1 << fields[name][1]) - 1 for name in COLUMNS], dtype=np.int64)
        alu_masks = np.array([(1 << (alu.get(name) or fields[name])[1]) - 1 for name in COLUMNS], dtype=np.int64)
        found = _LAYOUT_CACHE[key] = ([(COL[name], lsb, width) for name, (lsb, width) in fields.items()],
                                      [(COL[name], lsb, width) for name, (lsb, width) in alu.items()],
                                      masks, alu_masks)
    return found


def _extract(table: np.ndarray, words: np.ndarray, fields, rows=None) -> None:
    for row, lsb, width in fields:
        part = (words[:, lsb // 64] >> np.uint64(lsb % 64)) & np.uint64((1 << width) - 1)
        if rows is None:
            table[row] = part
        else:
            table[row, rows] = part


def _sign_extend_imm(table: np.ndarray) -> None:
    # The fsim reads imm as a signed bit-field.
    imm = table[COL["imm"]]
    imm -= (imm & 0x8000) << 1


def columns_from_bytes(data: bytes, env) -> np.ndarray:
    n = len(data) // isa.INSN_BYTES
    words = np.frombuffer(data, dtype="<u8", count=2 * n).reshape(n, 2)
    fields, alu_fields, _, _ = _layout(env)
    table = np.empty((len(COLUMNS), n), dtype=np.int64)
    _extract(table, words, fields)
    alu = np.flatnonzero(table[COL["opcode"]] == isa.ALU)
    if alu.size and alu_fields:
        _extract(table, words[alu], alu_fields, alu)
    _sign_extend_imm(table)
    return table


def columns_from_objects(instructions) -> tuple[np.ndarray | None, bool]:
    """Raw attribute values of a sequence of Insn objects (what the cycle model reads), and
    whether every MemInsn's opcode is LOAD or STORE (else its bits decode with another layout).

    None when an object is not one of the four instruction classes or a value is not a 64-bit
    integer: such streams take the encoding path.
    """
    kinds = list(map(_CLASS_KEY.get, map(type, instructions)))
    if None in kinds:
        return None, False
    n = len(instructions)
    kind = np.array(kinds, dtype=np.int64)
    table = np.zeros((len(COLUMNS), n), dtype=np.int64)
    mem_rows = None
    try:
        for cls, key in _CLASS_KEY.items():
            rows = np.flatnonzero(kind == key)
            if not rows.size:
                continue
            objs = list(map(instructions.__getitem__, rows.tolist()))
            # struct packs Python ints about 3x faster than numpy converts them one by one.
            packed = b"".join(starmap(_PACKERS[cls], map(_GETTERS[cls], objs)))
            values = np.frombuffer(packed, dtype=np.int64).reshape(rows.size, -1)
            if cls is MemInsn:
                mem_rows = rows
            if cls in _CLASS_OPCODE:
                table[COL["opcode"], rows] = _CLASS_OPCODE[cls]
            table[_OBJECT_ROWS[cls][:, None], rows] = values.T
    except (struct.error, OverflowError, TypeError, ValueError):
        return None, False
    mem_ops = None if mem_rows is None else table[COL["opcode"], mem_rows]
    well_formed = mem_ops is None or bool(np.all((mem_ops == isa.LOAD) | (mem_ops == isa.STORE)))
    return table, well_formed


def encoded_columns(raw: np.ndarray, env) -> np.ndarray:
    """``raw`` object columns (of well-formed objects) truncated to the field widths, as
    ``isa.encode`` stores them and a decode reads them back."""
    _, _, masks, alu_masks = _layout(env)
    table = raw & masks[:, None]
    alu = np.flatnonzero(raw[COL["opcode"]] == isa.ALU)
    if alu.size:
        table[:, alu] = raw[:, alu] & alu_masks[:, None]
    _sign_extend_imm(table)
    return table


# ---- the decoded stream ----------------------------------------------------------------

class Step:
    """One executable instruction as the executors need it: ``args`` are the kind-specific
    fields in the order the executors unpack them."""

    __slots__ = ("index", "module", "kind", "memory_type", "args", "stream")

    def __init__(self, index, module, kind, memory_type, args, stream):
        self.index, self.module, self.kind = index, module, kind
        self.memory_type, self.args, self.stream = memory_type, args, stream

    def describe(self, env) -> str:
        return self.stream.describe(self.index)


class Stream:
    """A statically valid instruction stream: columns, per-instruction module and token
    queues, the counters of a complete run, and (on demand) the executable ``Step``s."""

    def __init__(self, env, table: np.ndarray, raw: bytes | None, instructions, timing_table=None):
        self.env, self.table, self.n = env, table, table.shape[1]
        self.cols = as_columns(table)
        self._raw, self._instructions = raw, instructions
        # The cycle model reads the objects' own values; they differ from the encoded ones only
        # when a value overflows its field.
        if timing_table is not None and np.array_equal(timing_table, table):
            timing_table = None
        self.timing_table = timing_table
        self._steps = None

    # naming an instruction in messages
    def raw(self, index: int) -> bytes:
        if self._raw is not None:
            return self._raw[index * isa.INSN_BYTES:(index + 1) * isa.INSN_BYTES]
        return isa.encode(self._instructions[index], self.env)

    def disassemble(self, index: int) -> str:
        raw = self.raw(index)
        try:
            return str(isa.decode(raw, self.env, index))
        except isa.IsaError:
            return f"raw {raw.hex()}"

    def describe(self, index: int) -> str:
        return f"instruction {index} ({self.disassemble(index)})"

    def steps(self) -> list:
        """``Step`` of every instruction that moves data or computes, None for the others."""
        if self._steps is None:
            self._steps = _build_steps(self)
        return self._steps

    def uop_loads(self) -> list:
        """(index, Step) of every UOP load that moves data, in program order."""
        c = self.cols
        idx = np.flatnonzero((c["opcode"] == isa.LOAD) & (c["memory_type"] == isa.MEM_UOP) & (c["x_size"] != 0))
        args = zip(*(c[f][idx].tolist() for f in MEM_FIELDS))
        return [(i, Step(i, COMPUTE_MODULE, K_LOAD, isa.MEM_UOP, a, self)) for i, a in zip(idx.tolist(), args)]


def decode(program, env, dram_size: int, limit=DEFAULT_WORK_LIMIT) -> Stream:
    """The ``Stream`` of a Program or raw bytes; raises SimulationError for anything statically
    wrong (the first offending instruction, in program order) or more work than ``limit``."""
    if isinstance(program, isa.Program):
        _check_program(program)
        if program.env != env:
            raise SimulationError(f"program built for {program.env!r}, simulator is {env!r}")
        insns = program.instructions
        raw, well_formed = columns_from_objects(insns) if insns else (None, False)
        if raw is None or not well_formed:
            return decode(_program_bytes(program), env, dram_size, limit)
        stream = Stream(env, encoded_columns(raw, env), None, insns, timing_table=raw)
    elif isinstance(program, (bytes, bytearray, memoryview)):
        data = bytes(program)
        if len(data) % isa.INSN_BYTES:
            raise SimulationError(
                f"instruction stream of {len(data)} bytes is not a multiple of {isa.INSN_BYTES}: truncated, "
                f"{len(data) // isa.INSN_BYTES} whole instructions then {len(data) % isa.INSN_BYTES} stray bytes")
        if not data:
            raise SimulationError("empty instruction stream: no FINISH")
        stream = Stream(env, columns_from_bytes(data, env), data, None)
    else:
        raise SimulationError(f"execute() takes a compiler.isa.Program or bytes, not {type(program).__name__}")
    _check(stream, env, dram_size)
    _check_work(stream, env, limit)
    return stream


_INSN_CLASSES = tuple(_OBJECT_FIELDS)


def _check_program(program) -> None:
    """A Program whose fields were replaced by something else (None, a number...) is refused
    by name, before anything reads them."""
    insns = program.instructions
    if not isinstance(insns, (list, tuple)):
        raise SimulationError(f"Program.instructions must be a list of instructions, got {type(insns).__name__}")
    for i, insn in enumerate(insns):
        if not isinstance(insn, _INSN_CLASSES):
            raise SimulationError(f"Program.instructions[{i}] is a {type(insn).__name__}, not an instruction "
                                  f"({', '.join(c.__name__ for c in _INSN_CLASSES)})")
    uops = program.uops
    if not isinstance(uops, np.ndarray) or uops.ndim != 1 or uops.dtype != np.uint32:
        raise SimulationError(f"Program.uops must be a 1-D uint32 numpy array, got "
                              f"{type(uops).__name__}{getattr(uops, 'shape', '')}")
    base = program.uop_base
    if isinstance(base, bool) or not isinstance(base, (int, np.integer)):
        raise SimulationError(f"Program.uop_base must be an integer byte address, got {base!r}")


def _program_bytes(program) -> bytes:
    try:
        return program.to_bytes()
    except (TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise SimulationError(f"Program cannot be encoded: {exc}") from None


def _check_work(stream: "Stream", env, limit) -> None:
    """Refuse, before anything runs, GEMM/ALU instructions or programs beyond ``limit``."""
    c = stream.cols
    loop = (c["opcode"] == isa.GEMM) | (c["opcode"] == isa.ALU)
    if not loop.any():
        return
    per = cells_per_iteration(env)
    # Python ints: 14 + 14 + 13 bits of iterations times the cells cannot overflow int64, but stay exact.
    iterations = c["iter_out"] * c["iter_in"] * (c["uop_end"] - c["uop_bgn"])
    cells = np.where(loop, iterations, 0) * per
    worst = int(np.argmax(cells))
    if int(cells[worst]) > limit.per_instruction:
        raise SimulationError(
            f"{stream.describe(worst)}: {int(iterations[worst])} uop-iterations ({int(cells[worst])} cells of work) "
            f"exceed the simulator's per-instruction work limit of {limit.per_instruction} cells")
    total = int(cells.sum())
    if total > limit.per_program:
        raise SimulationError(f"program of {stream.n} instructions asks for {total} cells of GEMM/ALU work, "
                              f"beyond the simulator's per-program work limit of {limit.per_program} cells")


def sram_depth(env, memory_type: int) -> int:
    return {isa.MEM_UOP: env.UOP_DEPTH, isa.MEM_INP: env.INP_DEPTH, isa.MEM_WGT: env.WGT_DEPTH,
            isa.MEM_ACC: env.ACC_DEPTH, isa.MEM_ACC_8BIT: env.ACC_DEPTH,
            isa.MEM_OUT: env.ACC_DEPTH}[memory_type]


elem_bytes = isa.elem_bytes


_TABLES: dict = {}


def _tables(env):
    """Lookup arrays over ``opcode * 8 + memory_type`` (both 3-bit fields) for the static checks:
    module, LOAD/STORE/GEMM/ALU, illegal opcode, illegal LOAD/STORE memory type, SRAM depth,
    DRAM element bytes, load counter and the bytes it counts per element; and over the flag
    code (``FLAG_TABLE`` index): a flag set where its module has no queue."""
    key = (env.UOP_DEPTH, env.INP_DEPTH, env.WGT_DEPTH, env.ACC_DEPTH, env.ACC_WIDTH, env.INP_WIDTH,
           env.UOP_ELEM_BYTES, env.INP_ELEM_BYTES, env.WGT_ELEM_BYTES, env.ACC_ELEM_BYTES, env.OUT_ELEM_BYTES)
    found = _TABLES.get(key)
    if found is not None:
        return found
    t = {name: np.zeros(64, dtype=np.int64) for name in
         ("module", "load", "store", "loop", "alu", "bad_op", "bad_mem", "depth", "elem", "counter", "unit")}
    for op in range(8):
        for mtype in range(8):
            k = op * 8 + mtype
            if op > isa.ALU:
                t["bad_op"][k] = 1
                continue
            t["module"][k] = MODULE_NAMES.index(isa.module_of(op, mtype))
            t["loop"][k] = op in (isa.GEMM, isa.ALU)
            t["alu"][k] = op == isa.ALU
            if op not in (isa.LOAD, isa.STORE):
                continue
            t["load" if op == isa.LOAD else "store"][k] = 1
            if op == isa.STORE:
                t["bad_mem"][k] = mtype != isa.MEM_OUT
            else:
                t["bad_mem"][k] = mtype not in LOAD_COUNTER or (
                    mtype == isa.MEM_ACC_8BIT and (env.ACC_WIDTH != 32 or env.INP_WIDTH != 8))
            if mtype in isa.MEM_NAMES:
                t["depth"][k], t["elem"][k] = sram_depth(env, mtype), elem_bytes(env, mtype)
            if op == isa.LOAD and mtype in LOAD_COUNTER:
                t["counter"][k] = LOAD_COUNTER[mtype]
                # ACC_8BIT counts the full accumulator element (upstream over-counts 4x, vta-spec §4).
                t["unit"][k] = env.ACC_ELEM_BYTES if mtype == isa.MEM_ACC_8BIT else elem_bytes(env, mtype)
    no_queue = np.array([any(((code % 16) >> (3 - f)) & 1 and MODULE_QUEUES[code // 16][f] is None
                             for f in range(4)) for code in range(48)])
    found = _TABLES[key] = ({k: (v.astype(bool) if k in ("load", "store", "loop", "alu", "bad_op", "bad_mem")
                                 else v) for k, v in t.items()}, no_queue)
    return found


def _check(stream: Stream, env, dram_size: int) -> None:
    """Vectorised static checks (the conditions ``_first_error`` names one by one); fills the
    stream's modules, token queues, FIFOs and counters."""
    c = stream.cols
    t, no_queue = _tables(env)
    op = c["opcode"]
    key = op * 8 + c["memory_type"]
    module = t["module"][key]
    codes = module * 16 + _FLAG_WEIGHTS @ (stream.table[COL["pop_prev"]:COL["push_next"] + 1] != 0)
    bad = t["bad_op"][key] | no_queue[codes]

    x, y = c["x_size"], c["y_size"]
    active = (t["load"][key] | t["store"][key]) & (x != 0)
    store = t["store"][key]
    x_pads, y_pads = c["x_pad_0"] + c["x_pad_1"], c["y_pad_0"] + c["y_pad_1"]
    bad |= active & (t["bad_mem"][key] | (store & (x_pads + y_pads != 0)))
    rows = np.where(store, x * y, (x + x_pads) * (y + y_pads))
    bad |= active & (c["sram_base"] + rows > t["depth"][key])
    bad |= active & (y != 0) & ((c["dram_base"] + (y - 1) * c["x_stride"] + x) * t["elem"][key] > dram_size)
    bgn, uend = c["uop_bgn"], c["uop_end"]
    bad |= t["loop"][key] & ((uend < bgn) | (uend > env.UOP_DEPTH))
    bad |= t["alu"][key] & (c["alu_opcode"] > max(isa.ALU_NAMES))

    finishes = np.flatnonzero(op == isa.FINISH)
    if bad.any() or not finishes.size or np.any(module[finishes[0] + 1:] == COMPUTE_MODULE):
        _first_error(stream, env, dram_size)   # raises

    stream.module_array = module
    stream.module = module.tolist()
    codes = codes.tolist()
    stream.pops = list(map(POPS.__getitem__, codes))
    stream.pushes = list(map(PUSHES.__getitem__, codes))
    stream.fifos = tuple(np.flatnonzero(module == m).tolist() for m in range(3))
    stream.finish = int(finishes[0])

    stream.counters = _count(c, t, key, active, store, env)


def _count(c: dict, t: dict, key: np.ndarray, active: np.ndarray, store: np.ndarray, env) -> list:
    """The seven counters of a stream's columns. Counters never depend on data (vta-spec §4);
    reset GEMMs add nothing."""
    x, y, op = c["x_size"], c["y_size"], c["opcode"]
    counters = np.zeros(len(C.COUNTER_NAMES), dtype=np.int64)
    load = active & t["load"][key]
    np.add.at(counters, t["counter"][key[load]], (x * y * t["unit"][key])[load])
    counters[C.OUT_STORE] += int((x * y)[active & store].sum()) * env.OUT_ELEM_BYTES
    iterations = c["iter_out"] * c["iter_in"] * (c["uop_end"] - c["uop_bgn"])
    counters[C.GEMM_COUNT] += int(iterations[(op == isa.GEMM) & (c["reset_reg"] == 0)].sum())
    counters[C.ALU_COUNT] += int(iterations[op == isa.ALU].sum())
    return counters.tolist()


def _build_steps(stream: Stream) -> list:
    c, n = stream.cols, stream.n
    steps = [None] * n
    op = c["opcode"]
    mem = np.flatnonzero(((op == isa.LOAD) | (op == isa.STORE)) & (c["x_size"] != 0))
    for i, mtype, args in zip(mem.tolist(), c["memory_type"][mem].tolist(),
                              zip(*(c[f][mem].tolist() for f in MEM_FIELDS))):
        kind = K_STORE if op[i] == isa.STORE else K_LOAD
        steps[i] = Step(i, stream.module[i], kind, mtype, args, stream)
    gemm = np.flatnonzero(op == isa.GEMM)
    for i, args in zip(gemm.tolist(), zip(*(c[f][gemm].tolist() for f in GEMM_FIELDS))):
        steps[i] = Step(i, COMPUTE_MODULE, K_GEMM, -1, args, stream)
    alu = np.flatnonzero(op == isa.ALU)
    for i, args in zip(alu.tolist(), zip(*(c[f][alu].tolist() for f in ALU_FIELDS))):
        steps[i] = Step(i, COMPUTE_MODULE, K_ALU, -1, args, stream)
    return steps


# ---- the first static error, named -------------------------------------------------------

def _first_error(stream: Stream, env, dram_size: int) -> None:
    """Walk the stream in order and raise the first static error (vta-spec §2, §3.7)."""
    cols = {k: v.tolist() for k, v in stream.cols.items()}
    n = stream.n
    modules = []
    for i in range(n):
        op = cols["opcode"][i]
        if op not in (isa.LOAD, isa.STORE, isa.GEMM, isa.ALU, isa.FINISH):
            w = int.from_bytes(stream.raw(i), "little")
            raise SimulationError(f"instruction {i}: unknown opcode {op} "
                                  f"(word0 {w & (2**64 - 1):#018x}, word1 {w >> 64:#018x})")
        module = MODULE_NAMES.index(isa.module_of(op, cols["memory_type"][i]))
        modules.append(module)
        queues = MODULE_QUEUES[module]
        for f, flag in enumerate(FLAG_NAMES):
            if cols[flag][i] and queues[f] is None:
                raise SimulationError(f"{stream.describe(i)}: {flag} is set on a {MODULE_NAMES[module]}-module "
                                      f"instruction, which has no such token queue")
        if op in (isa.LOAD, isa.STORE):
            _check_mem(stream, i, op, {k: cols[k][i] for k in ("memory_type",) + MEM_FIELDS}, env, dram_size)
        elif op in (isa.GEMM, isa.ALU):
            f = {k: cols[k][i] for k in LOOP_FIELDS + ("alu_opcode",)}
            _check_loop(stream, i, f, env)
            if op == isa.ALU and f["alu_opcode"] not in isa.ALU_NAMES:
                raise SimulationError(f"{stream.describe(i)}: unknown ALU opcode {f['alu_opcode']} "
                                      f"(MIN 0, MAX 1, ADD 2, SHR 3, MUL 4)")
    finishes = [i for i in range(n) if cols["opcode"][i] == isa.FINISH]
    if not finishes:
        raise SimulationError(f"instruction stream of {n} instructions has no FINISH; "
                              f"the run would never end")
    first = finishes[0]
    # Upstream's done flag is overwritten by every later instruction, so anything the compute
    # module runs after FINISH makes the fsim spin forever (vta-spec §3.7).
    later = [i for i in range(first + 1, n) if modules[i] == COMPUTE_MODULE]
    if later:
        raise SimulationError(f"{stream.describe(later[0])} follows FINISH (instruction {first}) in the compute "
                              f"module; FINISH must be the last compute instruction")


def _check_mem(stream: Stream, i: int, op: int, f: dict, env, dram_size: int) -> None:
    if f["x_size"] == 0:  # upstream returns before looking at anything else: a token-only NOP
        return
    mtype = f["memory_type"]
    if op == isa.STORE:
        if mtype != isa.MEM_OUT:
            raise SimulationError(f"{stream.describe(i)}: STORE memory_type {mtype} "
                                  f"({isa.MEM_NAMES.get(mtype, 'unknown')}); only OUT ({isa.MEM_OUT}) is stored")
        pads = [f[k] for k in ("y_pad_0", "y_pad_1", "x_pad_0", "x_pad_1")]
        if any(pads):
            raise SimulationError(f"{stream.describe(i)}: STORE with padding (y_pad {pads[0]}/{pads[1]}, "
                                  f"x_pad {pads[2]}/{pads[3]}); stores take no padding")
        rows = f["x_size"] * f["y_size"]
    else:
        if mtype not in LOAD_COUNTER:
            raise SimulationError(f"{stream.describe(i)}: unknown LOAD memory_type {mtype} "
                                  f"(UOP 0, WGT 1, INP 2, ACC 3, ACC_8BIT 5)")
        if mtype == isa.MEM_ACC_8BIT and (env.ACC_WIDTH != 32 or env.INP_WIDTH != 8):
            raise SimulationError(f"{stream.describe(i)}: ACC_8BIT loads need ACC_WIDTH 32 and INP_WIDTH 8 "
                                  f"(this geometry: {env.ACC_WIDTH}, {env.INP_WIDTH})")
        rows = ((f["x_pad_0"] + f["x_size"] + f["x_pad_1"]) *
                (f["y_pad_0"] + f["y_size"] + f["y_pad_1"]))
    depth = sram_depth(env, mtype)
    if f["sram_base"] + rows > depth:
        raise SimulationError(f"{stream.describe(i)}: SRAM rows [{f['sram_base']}, {f['sram_base'] + rows}) "
                              f"exceed the {isa.MEM_NAMES[mtype] if op == isa.LOAD else 'ACC'} depth {depth}")
    if f["y_size"]:
        e = elem_bytes(env, mtype)
        start = f["dram_base"] * e
        end = start + (f["y_size"] - 1) * f["x_stride"] * e + f["x_size"] * e
        if end > dram_size:
            raise SimulationError(f"{stream.describe(i)}: DRAM bytes [{start:#x}, {end:#x}) lie outside the "
                                  f"simulated DRAM of {dram_size:#x} bytes")


def _check_loop(stream: Stream, i: int, f: dict, env) -> None:
    if f["uop_end"] < f["uop_bgn"]:
        raise SimulationError(f"{stream.describe(i)}: uop_end {f['uop_end']} < uop_bgn {f['uop_bgn']}")
    if f["uop_end"] > env.UOP_DEPTH:
        raise SimulationError(f"{stream.describe(i)}: uop range [{f['uop_bgn']}, {f['uop_end']}) "
                              f"exceeds the uop depth {env.UOP_DEPTH}")

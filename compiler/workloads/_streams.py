"""Instruction streams of the op-library templates straight from the knobs, as columns.

``workloads.build`` lowers a schedule and runs its host code against the runtime, one Python
call per instruction. Here the same host loop nest is written down per template (conv2d_packed
with its grouped and transposed variants, and alu_packed; dense_packed is not covered yet) (the loops,
DMA calls, uop kernels and the token pushes/pops of the real ``coproc_sync`` pass, run on a
skeleton of the nest), and a compiled loop (``_emit``) replays the runtime's bookkeeping. The
result is the stream's columns (``_emit.COLUMNS``; ``dram_base`` left 0) plus the module's
buffer footprint, without building a module. The general compiler stays the source of truth:
``tests/dse/test_fastcount.py`` checks the two agree over random knob sets.

:func:`stream_columns` returns None for what it does not cover (the caller then builds).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..ir import Allocate, Attr, Buffer, Call, CompileError, Evaluate, For, IntImm, Var, seq
from ..isa import ALU_ADD, ALU_MAX, ALU_MIN, ALU_SHR, LOAD, MEM_ACC, MEM_ACC_8BIT, MEM_INP, MEM_OUT, MEM_WGT, STORE
from ..lower.passes.sync import coproc_sync
from . import _emit as E
from ._knobs import check_knobs
from ._layers import CONV_LAYERS, Elementwise, conv_geometry
from ._templates import transpose_split
from ..isa import ALU_MUL


@dataclasses.dataclass
class Streams:
    """One program's stream as a (len(COLUMNS), n) int64 table, and the module footprint."""

    table: np.ndarray
    footprint: dict
    repeats: np.ndarray = None   # (row, period, count) runs of copied rows: a hint for counting


def _fold(dims):
    """(x_size, y_size, x_stride) of a DRAM region given outer-to-inner (extent, stride) element
    dims, folded as the DMA injector does (unit dims vanish, contiguous dims merge)."""
    merged = []
    for extent, stride in reversed([d for d in dims if d[0] > 1]):
        if merged and merged[-1][0] * merged[-1][1] == stride:
            e, s = merged.pop()
            merged.append((e * extent, s))
        else:
            merged.append((extent, stride))
    if len(merged) > 2 or (len(merged) == 2 and merged[0][1] != 1):
        return None
    if not merged:
        return 1, 1, 1
    if merged[0][1] != 1:
        return 1, merged[0][0], merged[0][1]
    if len(merged) == 1:
        return merged[0][0], 1, merged[0][0]
    return merged[0][0], merged[1][0], merged[1][1]


def _flatten(loops):
    """Upstream's ALU loop flattening over (extent, dst, src) loops, outer to inner."""
    loops = list(loops)
    out = []
    ve, vd, vs = loops.pop()
    while loops:
        ne, nd, ns = loops.pop()
        if ns == vs * ve and nd == vd * ve:
            ve *= ne
        else:
            out.append((ve, vd, vs))
            ve, vd, vs = ne, nd, ns
    out.append((ve, vd, vs))
    return out[::-1]


def _int16(value):
    value = int(value) & 0xFFFF
    return value - 0x10000 if value & 0x8000 else value


class _Program:
    """An op program under construction: ops, affine rows, pad rows, kernels, loop slots."""

    def __init__(self, nslots_hint=0):
        self.ops, self.aff, self.pads = [], [], []
        self.nslots = 0
        self.kernels = []      # per site: a list over signatures of kernel rows
        self.extents = {}      # max footprint indices
        self.uops_total = 0

    def slot(self):
        self.nslots += 1
        return self.nslots - 1

    def affine(self, const, terms):
        self.aff.append((const, dict(terms)))
        return len(self.aff) - 1

    def op(self, *fields):
        row = list(fields) + [0] * (E.OP_WIDTH - len(fields))
        self.ops.append(row)

    def arrays(self):
        ops = np.array(self.ops, dtype=np.int64).reshape(-1, E.OP_WIDTH)
        aff = np.zeros((max(len(self.aff), 1), 1 + max(self.nslots, 1)), dtype=np.int64)
        for r, (const, terms) in enumerate(self.aff):
            aff[r, 0] = const
            for s, c in terms.items():
                aff[r, 1 + s] += c
        pads = np.array(self.pads, dtype=np.int64).reshape(-1, E.PAD_WIDTH)
        if not len(pads):
            pads = np.zeros((1, E.PAD_WIDTH), dtype=np.int64)
        return ops, aff, pads


def _block(name):
    return Evaluate(Call("fast.block", [name]))


def _skeleton_sync(tile_loops, tile_body):
    """Run the real coproc_sync pass on the host nest's skeleton: ``tile_loops`` (extent, tag)
    outer to inner around ``tile_body`` (a list of (queue | None, block name or ('loops', ...)))."""
    return coproc_sync(_nest(tile_loops, tile_body), None)


def _nest(loops, body):
    for extent, tag in reversed(loops):
        body = For(Var(tag), extent, body)
    return body


class _Conv:
    """The host loop nest of ``conv2d_packed`` (see ``_templates.conv2d_packed``)."""

    def __init__(self, layer, env, k):
        self.layer, self.env, self.k = layer, env, k
        L = layer
        self.g = g = conv_geometry(layer)
        self.C = L.in_channels // g.groups // env.BLOCK_IN   # input blocks the kernel holds
        self.O = L.out_channels // env.BLOCK_OUT
        self.Ho, self.Wo = L.out_height, L.out_width
        self.co, self.h, self.w = k["tile_co"][1], k["tile_h"][1], k["tile_w"][1]
        self.Tc, self.Th = k["oc_nthread"], k["h_nthread"]
        self.T = self.Tc * self.Th
        self.ci_block = k["load_level"] == "ci_block"
        self.ci = 1 if self.ci_block else k["tile_ci"][1]
        self.rows = (self.h - 1) * g.stride + g.kernel
        self.cols = (self.w - 1) * g.stride + g.kernel
        self.bias = any(step[0] == "bias" for step in L.epilogue)
        self.inp_t = self.ci * self.rows * self.cols
        self.wgt_t = self.co * self.ci * g.kernel * g.kernel
        self.acc_t = self.co * self.h * self.w + (self.co if self.bias else 0)

    def alu_ops(self):
        """(alu_opcode, use_imm, imm, tensor operand) of each epilogue stage, in order."""
        out = []
        for step in self.layer.epilogue:
            name, args = step[0], step[1:]
            if name == "bias":
                out.append((ALU_ADD, 0, 0, True))
            elif name == "shr":
                out.append((ALU_SHR, 1, args[0], False))
            elif name == "add":
                out.append((ALU_ADD, 1, args[0], False))
            elif name == "max":
                out.append((ALU_MAX, 1, args[0], False))
            elif name == "relu":
                out.append((ALU_MAX, 1, 0, False))
            elif name == "min":
                out.append((ALU_MIN, 1, args[0], False))
            elif name == "clip":
                out.append((ALU_MIN, 1, args[1], False))
                out.append((ALU_MAX, 1, args[0], False))
        return out


@functools.lru_cache(maxsize=64)
def _imm_mask(alu_fields) -> int:
    return (1 << dict((n, w) for n, _, w in alu_fields)["imm"]) - 1


def _imm_field(env, value):
    """The immediate as the instruction holds it: int16 (upstream's kernel field), then the
    ISA field width, signed."""
    mask = _imm_mask(env.isa.alu.fields)
    value = _int16(value) & mask
    return value - (mask + 1) if value > mask >> 1 else value


def _gemm_kernel(loops):
    """Kernel row (without alu fields) of a GEMM uop nest: nontrivial (extent, dst, src, wgt)
    loops outer to inner; the two outermost become the instruction's loops."""
    loops = [l for l in loops if l[0] > 1]
    folded, rest = loops[:2], loops[2:]
    uops = 1
    for l in rest:
        uops *= l[0]
    row = [uops, 0, len(folded)] + [0] * 11
    for i, l in enumerate(folded):
        row[3 + 4 * i:7 + 4 * i] = list(l)
    return row


def _box_max(base, loops, which):
    """Highest index of an affine uop nest (non-negative coefficients)."""
    return base + sum((l[0] - 1) * l[which] for l in loops)


@functools.lru_cache(maxsize=4096)
def _conv_structure(tile_tags: tuple, ci_tags: tuple, alu: bool, T: int):
    """The host nest of conv2d_packed with its tokens, as a flat item list: ``(OP_LOOP, tag,
    slot)`` ('thread' for a virtual-thread replication), ``(OP_END, slot)``, ``(OP_PUSH|OP_POP,
    from, to)``, ``(OP_SYNC,)`` and ``("block", name, thread slot or None)``; plus the slot of
    each tagged loop and the number of slots. Depends only on which loops exist, so it is
    computed (with the real coproc_sync pass on a skeleton) once per structure."""
    def scope(q, name):
        return Attr("coproc_scope", q, _block(name))

    inner = seq(Allocate(Buffer("inp", "int8", 1), Allocate(Buffer("wgt", "int8", 1),
                                                            seq(scope(1, "loads"), scope(2, "gemm")))))
    body = [scope(2, "reset"), _nest([(2, t) for t in ci_tags], inner)]
    if alu:
        body.append(scope(2, "epilogue"))
    body.append(scope(3, "store"))
    nest = _nest([(2, t) for t in tile_tags], Allocate(Buffer("acc", "int32", 1), seq(*body)))
    # The pass appends the final coproc_sync after the root. With virtual threads the root is
    # their attribute around the nest, so the nest's trailing pops come first; without, the
    # root is the nest itself and they follow the sync (pending in a stream never flushed).
    synced = coproc_sync(Attr("virtual_thread", T, nest) if T > 1 else nest, None)
    return _items(synced, T)


def _items(synced, T):
    """The synced skeleton as a flat item list (see ``_conv_structure``), the slot of each
    tagged loop and the number of slots; virtual threads replicate each scope and host call."""
    items, slots = [], {}
    counter = [0]

    def new_slot():
        counter[0] += 1
        return counter[0] - 1

    def replicate(fn):
        # vthread injection replicates each scope and each host call in place (unrolled or
        # as a loop: the same order of events)
        if T > 1:
            ts = new_slot()
            items.append((E.OP_LOOP, "thread", ts))
            fn(ts)
            items.append((E.OP_END, ts))
        else:
            fn(None)

    def walk_scope(s, t_slot):
        if hasattr(s, "stmts"):
            for x in s.stmts:
                walk_scope(x, t_slot)
            return
        name = s.call.name
        if name == "vta.coproc_dep_push":
            items.append((E.OP_PUSH, *[int(a) for a in s.call.args]))
        elif name == "vta.coproc_dep_pop":
            items.append((E.OP_POP, *[int(a) for a in s.call.args]))
        elif name == "fast.block":
            items.append(("block", s.call.args[0], t_slot))
        else:
            raise _Unsupported(name)

    def walk(s):
        if isinstance(s, For):
            slot = slots[s.var.name] = new_slot()
            items.append((E.OP_LOOP, s.var.name, slot))
            walk(s.body)
            items.append((E.OP_END, slot))
        elif hasattr(s, "stmts"):
            for x in s.stmts:
                walk(x)
        elif isinstance(s, Allocate):
            walk(s.body)
        elif isinstance(s, Attr) and s.key == "coproc_scope":
            replicate(lambda ts: walk_scope(s.body, ts))
        elif isinstance(s, Attr):
            walk(s.body)
        elif isinstance(s, Evaluate):
            if s.call.name == "vta.coproc_sync":
                items.append((E.OP_SYNC,))
            else:
                replicate(lambda ts: walk_scope(s, ts))
        else:
            raise _Unsupported(f"skeleton node {type(s).__name__}")

    walk(synced)
    return tuple(items), slots, counter[0]


def conv_program(layer, env, k):
    c = _Conv(layer, env, k)
    L = layer
    p = _Program()
    T = c.T
    nsig = T if T > 1 else 1
    top = {"inp": 0, "wgt": 0, "acc": 0, "out": 0}

    # ---- kernels: reset GEMM (site 0), GEMM (site 1), ALU stages (2..) ------------------
    g = c.g
    kk = g.kernel
    if g.order == "transpose":   # (extent, dst, src, wgt) loops of upstream's transposed conv order
        hi, wi = transpose_split(c.h, 4), transpose_split(c.w, 2)
        reset_loops = [(c.w // wi, wi, 0, 0), (c.co, c.h * c.w, 0, 0), (c.h // hi, hi * c.w, 0, 0), (wi, 1, 0, 0),
                       (hi, c.w, 0, 0)]
        gemm_loops = [(c.ci, 0, c.rows * c.cols, kk * kk), (c.w // wi, wi, wi * g.stride, 0),
                      (c.co, c.h * c.w, 0, c.ci * kk * kk), (c.h // hi, hi * c.w, hi * g.stride * c.cols, 0),
                      (wi, 1, g.stride, 0), (kk, 0, 1, 1), (kk, 0, c.cols, kk), (hi, c.w, g.stride * c.cols, 0)]
    else:
        reset_loops = [(c.w, 1, 0, 0), (c.co, c.h * c.w, 0, 0), (c.h, c.w, 0, 0)]
        gemm_loops = [(c.ci, 0, c.rows * c.cols, kk * kk), (c.w, 1, g.stride, 0), (kk, 0, 1, 1),
                      (kk, 0, c.cols, kk), (c.co, c.h * c.w, 0, c.ci * kk * kk), (c.h, c.w, g.stride * c.cols, 0)]
    kernels = []
    rows = []
    reset = _gemm_kernel(reset_loops)
    reset[1] = 1
    rows.append(reset)
    rows.append(_gemm_kernel(gemm_loops))
    alu = c.alu_ops()
    hw = c.h * c.w
    for opcode, use_imm, imm, tensor in alu:
        if tensor:
            loops = [(c.co, hw, 1), (c.h, c.w, 0), (c.w, 1, 0)]
        else:
            loops = [(c.co, hw, hw), (c.h, c.w, c.w), (c.w, 1, 1)]
        loops = [l for l in loops if l[0] > 1]
        flat = _flatten(loops) if loops else []
        row = [1, 0, len(flat)] + [0] * 11
        for i, (e, d, s) in enumerate(flat):
            row[3 + 4 * i:6 + 4 * i] = [e, d, s]
        row[11], row[12], row[13] = opcode, use_imm, _imm_field(env, imm)
        rows.append(row)
    for row in rows:
        for t in range(nsig):
            kernels.append(row)
    kern = np.array(kernels, dtype=np.int64)
    # footprint of the uop nests, per thread
    for t in range(T):
        top["acc"] = max(top["acc"], _box_max(t * c.acc_t, reset_loops, 1) + 1,
                         _box_max(t * c.acc_t, gemm_loops, 1) + 1)
        top["inp"] = max(top["inp"], _box_max(t * c.inp_t, gemm_loops, 2) + 1)
        top["wgt"] = max(top["wgt"], _box_max(t * c.wgt_t, gemm_loops, 3) + 1)
        for opcode, use_imm, imm, tensor in alu:
            top["acc"] = max(top["acc"], t * c.acc_t + c.co * hw)   # dst covers the tile
            if tensor:
                top["acc"] = max(top["acc"], t * c.acc_t + c.co * hw + c.co)
    top["out"] = (T - 1) * c.acc_t + c.co * hw   # GEMM/ALU write the whole tile of every thread

    # ---- host loops --------------------------------------------------------------------
    n_b = L.batch // env.BATCH
    extents = {"b": n_b, "h": k["tile_h"][0] // c.Th, "c": k["tile_co"][0] // c.Tc, "w": k["tile_w"][0]}
    order = ["b"] + list(k["outer_order"])
    tile_loops = [(extents[a], a) for a in order if extents[a] > 1]
    if c.ci_block:
        ci_loops = [(k["tile_ci"][0], "ci_o"), (k["tile_ci"][1], "ci_i")]
    else:
        ci_loops = [(k["tile_ci"][0], "ci_o")]
    ci_loops = [l for l in ci_loops if l[0] > 1]

    items, slots, nbase = _conv_structure(tuple(tag for _, tag in tile_loops), tuple(tag for _, tag in ci_loops),
                                          bool(alu), T)
    extent_of = {tag: extent for extent, tag in tile_loops + ci_loops}
    store_slots = [nbase, nbase + 1]   # the store block's own loops (never nested in each other)
    p.nslots = nbase + 2

    def tile_index(axis, t_slot):
        """Affine terms of the tile index along axis 'h'/'w' for the thread in t_slot."""
        terms = {}
        if axis in slots:
            terms[slots[axis]] = c.Th if (axis == "h" and c.Th > 1) else 1
        if axis == "h" and c.Th > 1 and t_slot is not None:
            terms[t_slot] = terms.get(t_slot, 0) + 1
        return terms

    def emit_block(name, t_slot):
        tt = {t_slot: 1} if t_slot is not None else {}

        def scaled(stride):
            return {s: v * stride for s, v in tt.items()}

        sig = t_slot if (t_slot is not None and T > 1) else -1
        if name == "reset":
            p.op(E.OP_GEMM, 0, sig)
        elif name == "gemm":
            p.op(E.OP_GEMM, 1, sig)
        elif name == "loads":
            a = p.affine(0, scaled(c.inp_t))
            if g.padded:
                # the pad row holds the top (= left) pad; the bottom and right pads follow from
                # the input extent (a transposed conv's are larger by output_padding)
                pad_row = len(p.pads)
                p.pads.append([p.affine(0, tile_index("h", t_slot)), p.affine(0, tile_index("w", t_slot)),
                               c.rows, c.cols, g.in_height, g.in_width, c.h * g.stride, c.w * g.stride, g.pads[0]])
                p.op(E.OP_DMA, LOAD, MEM_INP, 1, 0, 0, g.in_width, a, pad_row, 0)
            else:
                f = _fold([(c.ci, g.in_height * g.in_width), (c.rows, g.in_width), (c.cols, 1)])
                if f is None:
                    raise _Unsupported("input tile is not a 2-D copy")
                p.op(E.OP_DMA, LOAD, MEM_INP, 1, f[0], f[1], f[2], a, -1, 0)
            f = _fold([(c.co, c.C * kk * kk), (c.ci, kk * kk), (kk, kk), (kk, 1)])
            if f is None:
                raise _Unsupported("weight tile is not a 2-D copy")
            p.op(E.OP_DMA, LOAD, MEM_WGT, 1, f[0], f[1], f[2], p.affine(0, scaled(c.wgt_t)), -1, 1)
        elif name == "epilogue":
            if c.bias:
                mem = MEM_ACC if k.get("bias_dtype", "int32") == "int32" else MEM_ACC_8BIT
                terms = scaled(c.acc_t)
                f = _fold([(c.co, 1)])
                p.op(E.OP_DMA, LOAD, mem, 2, f[0], f[1], f[2], p.affine(c.co * hw, terms), -1, 2)
            for i in range(len(alu)):
                p.op(E.OP_ALU, 2 + i, sig)
        elif name == "store":
            axis = k["store_axis"]
            loops = []
            if axis in ("h", "w") and c.co > 1:
                loops.append((c.co, hw))
            if axis == "w" and c.h > 1:
                loops.append((c.h, c.w))
            if axis == "co":
                dims = [(c.co, c.Ho * c.Wo), (c.h, c.Wo), (c.w, 1)]
            elif axis == "h":
                dims = [(c.h, c.Wo), (c.w, 1)]
            else:
                dims = [(c.w, 1)]
            f = _fold(dims)
            if f is None:
                raise _Unsupported("output tile is not a 2-D copy")
            terms = scaled(c.acc_t)
            for (extent, stride), s in zip(loops, store_slots):
                p.op(E.OP_LOOP, extent, s)
                terms[s] = terms.get(s, 0) + stride
            p.op(E.OP_DMA, STORE, MEM_OUT, 3, f[0], f[1], f[2], p.affine(0, terms), -1, 3)
            for _ in loops:
                p.op(E.OP_END, 0)

    for item in items:
        kind = item[0]
        if kind == E.OP_LOOP:
            p.op(E.OP_LOOP, extent_of[item[1]] if item[1] != "thread" else T, item[2])
        elif kind == "block":
            emit_block(item[1], item[2])
        else:
            p.op(*item)
    # buffer extents touched by the DMA (computed on the table by the caller) join these
    return p, kern, nsig, top


def _epilogue_alu(epilogue):
    """(alu_opcode, use_imm, imm) of each epilogue step after the main result (no bias)."""
    out = []
    for step in epilogue:
        name, args = step[0], step[1:]
        if name == "shr":
            out.append((ALU_SHR, 1, args[0]))
        elif name == "add":
            out.append((ALU_ADD, 1, args[0]))
        elif name == "max":
            out.append((ALU_MAX, 1, args[0]))
        elif name == "relu":
            out.append((ALU_MAX, 1, 0))
        elif name == "min":
            out.append((ALU_MIN, 1, args[0]))
        elif name == "clip":
            out.append((ALU_MIN, 1, args[1]))
            out.append((ALU_MAX, 1, args[0]))
        else:
            raise _Unsupported(f"epilogue step {name}")
    return out


def _store_block(p, k, co, h, w, Ho, Wo, base_terms, store_slots):
    """The STORE(s) of one output tile in the acc layout [co][h][w] under the store_axis knob."""
    hw = h * w
    axis = k["store_axis"]
    loops = []
    if axis in ("h", "w") and co > 1:
        loops.append((co, hw))
    if axis == "w" and h > 1:
        loops.append((h, w))
    if axis == "co":
        dims = [(co, Ho * Wo), (h, Wo), (w, 1)]
    elif axis == "h":
        dims = [(h, Wo), (w, 1)]
    else:
        dims = [(w, 1)]
    f = _fold(dims)
    if f is None:
        raise _Unsupported("output tile is not a 2-D copy")
    terms = dict(base_terms)
    for (extent, stride), slot in zip(loops, store_slots):
        p.op(E.OP_LOOP, extent, slot)
        terms[slot] = terms.get(slot, 0) + stride
    p.op(E.OP_DMA, STORE, MEM_OUT, 3, f[0], f[1], f[2], p.affine(0, terms), -1, 3)
    for _ in loops:
        p.op(E.OP_END, 0)


@functools.lru_cache(maxsize=1024)
def _ewise_structure(tile_tags: tuple):
    """The host nest of alu_packed with its tokens (see ``_conv_structure``)."""
    body = seq(Attr("coproc_scope", 2, _block("compute")), Attr("coproc_scope", 3, _block("store")))
    nest = _nest([(2, t) for t in tile_tags], Allocate(Buffer("acc", "int32", 1), body))
    return _items(coproc_sync(nest, None), 1)


def ewise_program(layer, env, k):
    """The op program of ``alu_packed``: per output tile, both operands DMA'd into the
    accumulator, the combining ALU op and the epilogue, then the store."""
    p = _Program()
    co, h, w = k["tile_co"][1], k["tile_h"][1], k["tile_w"][1]
    tile = co * h * w
    H, W = layer.height, layer.width
    alu = [(ALU_ADD if layer.op == "add" else ALU_MUL, 0, 0)] + _epilogue_alu(layer.epilogue)
    rows = []
    loops = [(l[0], l[1], l[1]) for l in ((co, h * w), (h, w), (w, 1)) if l[0] > 1]
    flat = _flatten(loops) if loops else []
    for i, (opcode, use_imm, imm) in enumerate(alu):
        row = [1, 0, len(flat)] + [0] * 11
        for j, (e, d, s_) in enumerate(flat):
            row[3 + 4 * j:6 + 4 * j] = [e, d, s_]
        row[11], row[12], row[13] = opcode, use_imm, _imm_field(env, imm)
        rows.append(row)
    kern = np.array(rows, dtype=np.int64)
    top = {"inp": 0, "wgt": 0, "acc": 2 * tile, "out": tile}   # the combine reads rhs at [tile, 2 tile)

    n_b = layer.batch // env.BATCH
    extents = {"b": n_b, "h": k["tile_h"][0], "c": k["tile_co"][0], "w": k["tile_w"][0]}
    tile_loops = [(extents[a], a) for a in ("b", "h", "c", "w") if extents[a] > 1]
    items, slots, nbase = _ewise_structure(tuple(tag for _, tag in tile_loops))
    extent_of = {tag: extent for extent, tag in tile_loops}
    p.nslots = nbase + 2
    f = _fold([(co, H * W), (h, W), (w, 1)])
    if f is None:
        raise _Unsupported("operand tile is not a 2-D copy")
    for item in items:
        kind = item[0]
        if kind == E.OP_LOOP:
            p.op(E.OP_LOOP, extent_of[item[1]], item[2])
        elif kind == "block" and item[1] == "compute":
            p.op(E.OP_DMA, LOAD, MEM_ACC, 2, f[0], f[1], f[2], p.affine(0, {}), -1, 2)
            p.op(E.OP_DMA, LOAD, MEM_ACC, 2, f[0], f[1], f[2], p.affine(tile, {}), -1, 2)
            for i in range(len(alu)):
                p.op(E.OP_ALU, i, -1)
        elif kind == "block":
            _store_block(p, k, co, h, w, H, W, {}, [nbase, nbase + 1])
        else:
            p.op(*item)
    return p, kern, 1, top


class _Unsupported(Exception):
    pass


_BUFFER: list = []


def _buffer(rows: int) -> np.ndarray:
    """A reused row-major output buffer (fresh memory costs a page fault per 4 KiB)."""
    if not _BUFFER or _BUFFER[0].shape[0] < rows:
        _BUFFER[:] = [np.empty((max(rows, 1 << 16), 32), dtype=np.int32)]
    return _BUFFER[0]


def stream_columns(layer, env, knobs, reuse: bool = False) -> Streams | None:
    """The stream ``workloads.build(layer, env, knobs)`` would emit, as columns, and its
    footprint; raises CompileError for knobs the static check refuses; None when this
    construct is not covered (build it instead). With ``reuse`` the table is a view of a
    buffer the next call overwrites (no copy; for a caller that is done with it by then)."""
    k = check_knobs(layer, env, knobs)
    program = conv_program if isinstance(layer, CONV_LAYERS) else {Elementwise: ewise_program}.get(type(layer))
    if program is None:
        return None
    try:
        prog, kern, nsig, top = program(layer, env, k)
    except _Unsupported:
        return None
    ops, aff, pads = prog.arrays()
    capacity = E.prepare(ops, aff, pads)
    tops = np.zeros(5, dtype=np.int64)
    rows = _buffer(capacity)
    repeats = np.zeros((256, 3), dtype=np.int64)
    status, n, nrep = E.emit(ops, aff, pads, kern, nsig, env.UOP_DEPTH, prog.nslots, rows, tops, repeats)
    if status != E.OK:
        return None
    table = rows[:n, :E.NCOL].T
    if not reuse:
        table = table.copy()
    found = dict(zip(("inp", "wgt", "acc", "out", "uop"), tops.tolist()))
    for name in ("inp", "wgt", "acc", "out"):
        found[name] = max(found[name], top[name])
    unit = {"inp": env.INP_ELEM_BYTES, "wgt": env.WGT_ELEM_BYTES, "acc": env.ACC_ELEM_BYTES,
            "uop": env.UOP_ELEM_BYTES, "out": env.OUT_ELEM_BYTES}
    return Streams(table, {name: found[name] * unit[name] for name in ("inp", "wgt", "acc", "uop", "out")},
                   repeats[:nrep])

"""SRAM storage planning (the part of TVM's StorageRewrite VTA relies on).

* In-place reuse: an ALU stage whose input buffer dies where the stage writes (same index,
  same size) takes over that buffer, so ``res_shr = res_conv >> 8`` runs in place — the ALU
  injection requires one operand at the result's own index.
* Merging: the SRAM allocations opened at one point are merged into one buffer per scope,
  each at an element-aligned offset, so every accumulator access names one buffer.
"""
from __future__ import annotations

from ...ir import Allocate, Attr, Buffer, For, Load, Seq, SramPtr, Store
from ..visit import map_stmt


def _units(s, depth, out):
    """Program-order leaf statements with their loop depth inside the allocation scope."""
    if isinstance(s, Seq):
        for x in s.stmts:
            _units(x, depth, out)
    elif isinstance(s, For):
        _units(s.body, depth + 1, out)
    elif isinstance(s, Attr):
        if s.key.startswith("pragma_"):
            out.append((s, depth))
        else:
            _units(s.body, depth, out)
    elif isinstance(s, Allocate):
        _units(s.body, depth, out)
    elif s is not None:
        out.append((s, depth))


def _buffers_in(node, out):
    if isinstance(node, (Load, SramPtr)):
        out.add(node.buffer)
    elif isinstance(node, Store):
        out.add(node.buffer)
    if isinstance(node, (list, tuple)):
        for x in node:
            _buffers_in(x, out)
    elif hasattr(node, "__dict__"):
        for v in node.__dict__.values():
            if hasattr(v, "__dict__") or isinstance(v, (list, tuple)):
                if not isinstance(v, Buffer):
                    _buffers_in(v, out)
    return out


def _inner_store(s):
    while isinstance(s, (Attr, For)):
        s = s.body
    return s if isinstance(s, Store) else None


def _plan_inplace(bufs, body, alu_key):
    """{buffer: buffer it reuses} for ALU stages computed in place."""
    units = []
    _units(body, 0, units)
    first, last = {}, {}
    for k, (u, _) in enumerate(units):
        for b in _buffers_in(u, set()):
            first.setdefault(b, k)
            last[b] = k
    alias = {}
    for k, (u, depth) in enumerate(units):
        if not (isinstance(u, Attr) and u.key == alu_key) or depth:
            continue
        st = _inner_store(u.body)
        if st is None or st.buffer not in bufs or first.get(st.buffer) != k:
            continue
        for load in _loads(st.value):
            y = load.buffer
            y = alias.get(y, y)
            if (load.buffer in bufs and last.get(load.buffer) == k and load.index == st.index
                    and load.buffer.extent == st.buffer.extent and load.buffer.dtype == st.buffer.dtype
                    and load.buffer is not st.buffer):
                alias[st.buffer] = y
                break
    return alias


def _loads(e):
    out = []
    if isinstance(e, Load):
        out.append(e)
    elif hasattr(e, "__dict__"):
        for v in e.__dict__.values():
            if hasattr(v, "__dict__") and not isinstance(v, Buffer):
                out.extend(_loads(v))
    return out


def storage_rewrite(stmt, ctx):
    env = ctx.env
    alu_key = "pragma_" + env.alu
    sram = {env.inp_scope: env.BATCH * env.BLOCK_IN, env.wgt_scope: env.BLOCK_OUT * env.BLOCK_IN,
            env.acc_scope: env.BATCH * env.BLOCK_OUT}
    remap: dict = {}   # old buffer -> (merged buffer, offset)

    def plan(s):
        chain = []
        body = s
        while isinstance(body, Allocate):
            chain.append(body.buffer)
            body = body.body
        sram_bufs = [b for b in chain if b.scope in sram]
        alias = _plan_inplace(set(sram_bufs), body, alu_key)
        merged_allocs = []
        for scope in dict.fromkeys(b.scope for b in sram_bufs):
            own = [b for b in sram_bufs if b.scope == scope and b not in alias]
            lanes = sram[scope]
            offset, offsets = 0, {}
            for b in own:
                offsets[b] = offset
                offset += -(-b.extent // lanes) * lanes
            merged = Buffer(own[0].name, own[0].dtype, offset, scope)
            merged.parts = [b.name for b in own]
            for b in own:
                remap[b] = (merged, offsets[b])
            merged_allocs.append(merged)
        for b, target in alias.items():
            while target in alias:
                target = alias[target]
            remap[b] = None, target   # resolved below
        for b in list(remap):
            m, off = remap[b]
            if m is None:
                remap[b] = remap[off]
        others = [b for b in chain if b.scope not in sram]
        for b in reversed(others + merged_allocs):
            body = Allocate(b, body)
        return body

    def rebuild(s):
        if isinstance(s, Allocate):
            inner = plan(s)
            # plan() re-wraps the chain; descend below it
            node, wrappers = inner, []
            while isinstance(node, Allocate):
                wrappers.append(node.buffer)
                node = node.body
            node = rebuild(node)
            for b in reversed(wrappers):
                node = Allocate(b, node)
            return node
        if isinstance(s, Seq):
            return Seq([rebuild(x) for x in s.stmts])
        if isinstance(s, For):
            return For(s.var, s.extent, rebuild(s.body))
        if isinstance(s, Attr):
            return Attr(s.key, s.value, rebuild(s.body), s.node)
        return s

    stmt = rebuild(stmt)

    def fexpr(e):
        if isinstance(e, Load) and e.buffer in remap:
            m, off = remap[e.buffer]
            return Load(m, e.index + off)
        if isinstance(e, SramPtr) and e.buffer in remap:
            m, off = remap[e.buffer]
            return SramPtr(m, e.index + off)
        return None

    def fstmt(s):
        if isinstance(s, Store) and s.buffer in remap:
            m, off = remap[s.buffer]
            return Store(m, s.index + off, s.value)
        return None

    return map_stmt(stmt, fstmt, fexpr)

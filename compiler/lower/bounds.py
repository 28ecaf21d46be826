"""Bound inference: the range of every axis of every stage, and each leaf loop's extent.

A stage computed at ``(parent, axis)`` only produces what its consumers read during one
iteration of that axis: loops enclosing the attach point stay symbolic (the region's start is
an affine expression of them), every other loop is relaxed over its whole range (TVM's
InferBound for the affine indices VTA kernels use).
"""
from __future__ import annotations

from ..ir import Affine, CompileError, to_affine
from ..schedule import Split
from ..te import TensorRead


class StageInfo:
    """Ranges of one stage: ``root_min[iv]`` (Affine over enclosing loop variables),
    ``ext[iv]`` for root and leaf axes, ``local[iv]`` = root axis offset from its min as an
    Affine of the (non-unit) leaf loop variables; ``fixed`` = variables of enclosing loops."""

    def __init__(self, stage):
        self.stage = stage
        self.root_min: dict = {}
        self.ext: dict = {}
        self.local: dict = {}
        self.fixed: set = set()
        self.buffer = None

    @property
    def roots(self):
        return list(self.stage.op.axis) + list(self.stage.op.reduce_axis)

    def root_value(self, iv) -> Affine:
        return self.root_min[iv] + self.local[iv]


def _reads_of(expr, tensor, out):
    if isinstance(expr, TensorRead):
        if expr.tensor is tensor:
            out.append(expr.indices)
        for i in expr.indices:
            _reads_of(i, tensor, out)
        return out
    for v in getattr(expr, "__dict__", {}).values():
        if isinstance(v, (list, tuple)):
            for x in v:
                _reads_of(x, tensor, out)
        elif hasattr(v, "__dict__") and not isinstance(v, type):
            _reads_of(v, tensor, out)
    return out


def _relax(aff: Affine, keep: set, var_ext: dict):
    kept = Affine({v: c for v, c in aff.terms.items() if v in keep})
    lo = hi = aff.const
    for v, c in aff.terms.items():
        if v in keep:
            continue
        if v not in var_ext:
            raise CompileError(f"bound inference: variable {v.name} is not a loop enclosing its use")
        span = c * (var_ext[v] - 1)
        lo += min(0, span)
        hi += max(0, span)
    return kept, lo, hi


def _leaf_structure(info: StageInfo, var_ext: dict) -> None:
    st = info.stage
    ext = info.ext
    for rel in st.relations:
        if isinstance(rel, Split):
            total = ext[rel.parent]
            kind, n = rel.factor
            if n <= 0 or total % n:
                raise CompileError(f"split of axis {rel.parent.name} (extent {total}) in stage {st.op.name}: "
                                   f"{kind} {n} does not divide it (non-exact splits are not supported)")
            ext[rel.outer], ext[rel.inner] = (total // n, n) if kind == "factor" else (n, total // n)
        else:
            ext[rel.fused] = ext[rel.outer] * ext[rel.inner]
    value = {iv: (Affine({iv.var: 1}) if ext[iv] > 1 else Affine()) for iv in st.leaf_iter_vars}
    for iv in st.leaf_iter_vars:
        if ext[iv] > 1:
            var_ext[iv.var] = ext[iv]
    for rel in reversed(st.relations):
        if isinstance(rel, Split):
            value[rel.parent] = value[rel.outer].scale(ext[rel.inner]) + value[rel.inner]
        else:
            if ext[rel.inner] == 1:
                value[rel.outer], value[rel.inner] = value[rel.fused], Affine()
            elif ext[rel.outer] == 1:
                value[rel.outer], value[rel.inner] = Affine(), value[rel.fused]
            else:
                raise CompileError(f"fuse of {rel.outer.name} (extent {ext[rel.outer]}) and {rel.inner.name} "
                                   f"(extent {ext[rel.inner]}) in stage {st.op.name}: fused loops are not "
                                   f"supported by the VTA lowering")
    for iv in info.roots:
        info.local[iv] = value[iv]


def attach_chain(stage):
    """(parent, axis) pairs from the stage's attach point outward."""
    out = []
    while stage.attach_stage is not None:
        out.append((stage.attach_stage, stage.attach_ivar))
        stage = stage.attach_stage
    return out


def infer_bounds(schedule) -> dict:
    """StageInfo of every stage, consumers before producers."""
    infos: dict = {}
    var_ext: dict = {}
    readers: dict = {}
    for st in schedule.stages:
        for t in st.inputs:
            readers.setdefault(t.op, []).append(st)
    for st in reversed(schedule.stages):
        info = StageInfo(st)
        infos[st] = info
        if st.is_placeholder:
            continue
        tensor = st.op.output
        if st.attach_stage is None:
            for iv in st.op.axis:
                info.root_min[iv], info.ext[iv] = Affine(), iv.extent
        else:
            parent = st.attach_stage
            if parent not in infos or parent.is_placeholder:
                raise CompileError(f"compute_at of {st.op.name}: {parent.op.name} must consume it (directly "
                                   f"or through stages computed inside it)")
            pinfo = infos[parent]
            leaves = parent.leaf_iter_vars
            if st.attach_ivar not in leaves:
                # TVM refuses this too ("cannot find attach point"): the axis was split or fused
                # after the compute_at, so no single loop of the parent corresponds to it.
                raise CompileError(f"compute_at of {st.op.name}: axis {st.attach_ivar.name} of {parent.op.name} was "
                                   f"split or fused after the compute_at; attach at one of its parts instead "
                                   f"(loops: {[iv.name for iv in leaves]})")
            k = leaves.index(st.attach_ivar)
            if parent.tensorize_ivar is not None and k >= leaves.index(parent.tensorize_ivar):
                raise CompileError(f"compute_at of {st.op.name}: axis {st.attach_ivar.name} of {parent.op.name} "
                                   f"is inside its tensorized region")
            info.fixed = set(pinfo.fixed) | {iv.var for iv in leaves[:k + 1]}
            regions = None
            for cons in readers.get(st.op, []):
                if cons is not parent and parent not in [p for p, _ in attach_chain(cons)]:
                    raise CompileError(f"compute_at of {st.op.name} at {parent.op.name}.{st.attach_ivar.name}: "
                                       f"its consumer {cons.op.name} is not computed inside {parent.op.name}")
                cinfo = infos[cons]
                vmap = {iv.var: cinfo.root_value(iv) for iv in cinfo.roots}
                for idx in _reads_of(cons.body, tensor, []):
                    region = []
                    for d, e in enumerate(idx):
                        aff = to_affine(e)
                        if aff is None:
                            raise CompileError(f"stage {cons.op.name} reads {st.op.name} with a non-affine index "
                                               f"{e!r} (dimension {d})")
                        region.append(_relax(aff.subst(vmap), info.fixed, var_ext))
                    if regions is None:
                        regions = region
                        continue
                    merged = []
                    for (k0, lo0, hi0), (k1, lo1, hi1) in zip(regions, region):
                        if not k0.same_terms(k1):
                            raise CompileError(f"bound inference for {st.op.name}: reads {k0!r} and {k1!r} "
                                               f"cannot be merged into one box")
                        merged.append((k0, min(lo0, lo1), max(hi0, hi1)))
                    regions = merged
            if regions is None:
                raise CompileError(f"stage {st.op.name} is computed at {parent.op.name} but nothing reads it")
            for iv, (kept, lo, hi) in zip(st.op.axis, regions):
                info.root_min[iv], info.ext[iv] = kept + lo, hi - lo + 1
        for iv in st.op.reduce_axis:
            info.root_min[iv], info.ext[iv] = Affine({}, iv.min), iv.extent
        _leaf_structure(info, var_ext)
    return infos

"""Schedule knobs as upstream's AutoTVM templates define them, their space and a static check.

A split knob is ``[outer, inner]`` exactly as AutoTVM records it (TopHub logs use this form);
applying it splits the axis by ``factor=inner``. The untuned fallback takes the first entity
of every knob: each split ``[-1, 1]`` and one thread (vta-spec §6.10).
"""
from __future__ import annotations

from ..ir import CompileError
from ._layers import Conv2D, Dense, check_packing


def _factors(n: int) -> list[int]:
    return [f for f in range(1, n + 1) if n % f == 0]


def split_axes(layer, env) -> dict[str, int]:
    """Extent of the axis each split knob divides, in VTA tiles."""
    check_packing(layer, env)
    if isinstance(layer, Conv2D):
        return {"tile_b": layer.batch // env.BATCH, "tile_h": layer.out_height, "tile_w": layer.out_width,
                "tile_ci": layer.in_channels // env.BLOCK_IN, "tile_co": layer.out_channels // env.BLOCK_OUT}
    if isinstance(layer, Dense):
        return {"tile_b": layer.batch // env.BATCH, "tile_ci": layer.in_features // env.BLOCK_IN,
                "tile_co": layer.out_features // env.BLOCK_OUT}
    raise CompileError(f"no schedule template for {type(layer).__name__}")


def thread_knobs(layer) -> tuple[str, ...]:
    return ("oc_nthread", "h_nthread") if isinstance(layer, Conv2D) else ("oc_nthread",)


def knob_space(layer, env) -> dict[str, list]:
    """Every value of every knob (AutoTVM 'factors' policy for splits, {1, 2} for threads)."""
    space = {name: [[extent // f, f] for f in _factors(extent)] for name, extent in split_axes(layer, env).items()}
    for name in thread_knobs(layer):
        space[name] = [1, 2]
    return space


def fallback_knobs(layer, env) -> dict:
    """AutoTVM's fallback config: the first entity of each knob."""
    knobs = {name: [extent, 1] for name, extent in split_axes(layer, env).items()}
    knobs.update({name: 1 for name in thread_knobs(layer)})
    return knobs


def normalize_knobs(layer, env, knobs) -> dict:
    """Fill missing knobs from the fallback, resolve ``-1`` outers, validate every split."""
    merged = fallback_knobs(layer, env)
    if knobs:
        unknown = [k for k in knobs if k not in merged]
        if unknown:
            raise CompileError(f"unknown knob {unknown[0]!r} for {type(layer).__name__}; "
                               f"knobs: {', '.join(merged)}")
        merged.update(knobs)
    axes = split_axes(layer, env)
    for name, extent in axes.items():
        value = merged[name]
        if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value)):
            raise CompileError(f"knob {name} = {value!r}: expected [outer, inner] integers")
        outer, inner = value
        if inner < 1 or extent % inner:
            raise CompileError(f"knob {name} = {list(value)}: inner {inner} does not divide the axis extent {extent}")
        if outer not in (-1, extent // inner):
            raise CompileError(f"knob {name} = {list(value)}: outer x inner must equal the axis extent {extent}")
        merged[name] = [extent // inner, inner]
    for name in thread_knobs(layer):
        if merged[name] not in (1, 2):
            raise CompileError(f"knob {name} = {merged[name]!r}: must be 1 or 2")
    return merged


def tile_footprint(layer, env, knobs) -> dict[str, int]:
    """SRAM elements one virtual thread's tiles occupy, per buffer."""
    k = normalize_knobs(layer, env, knobs)
    ci, co = k["tile_ci"][1], k["tile_co"][1]
    bias = any(step[0] == "bias" for step in layer.epilogue)
    if isinstance(layer, Conv2D):
        h, w = k["tile_h"][1], k["tile_w"][1]
        rows = (h - 1) * layer.stride + layer.kernel
        cols = (w - 1) * layer.stride + layer.kernel
        return {"inp": ci * rows * cols, "wgt": co * ci * layer.kernel * layer.kernel,
                "acc": co * h * w + (co if bias else 0)}
    b = k["tile_b"][1]
    return {"inp": b * ci, "wgt": co * ci, "acc": b * co + (b * co if bias else 0)}


def check_knobs(layer, env, knobs) -> dict:
    """Static feasibility: raises CompileError naming the knob or buffer; returns the knobs
    normalized. Cheap enough to reject candidates before anything is compiled."""
    k = normalize_knobs(layer, env, knobs)
    threads = 1
    if k.get("oc_nthread", 1) > 1:
        if k["tile_co"][0] % k["oc_nthread"]:
            raise CompileError(f"oc_nthread {k['oc_nthread']} does not divide the outer output-channel tiles "
                               f"{k['tile_co'][0]} (tile_co {k['tile_co']})")
        threads *= k["oc_nthread"]
    if k.get("h_nthread", 1) > 1:
        if k["tile_h"][0] % k["h_nthread"]:
            raise CompileError(f"h_nthread {k['h_nthread']} does not divide the outer row tiles "
                               f"{k['tile_h'][0]} (tile_h {k['tile_h']})")
        threads *= k["h_nthread"]
    depth = {"inp": env.INP_DEPTH, "wgt": env.WGT_DEPTH, "acc": env.ACC_DEPTH}
    elem = {"inp": env.INP_ELEM_BYTES, "wgt": env.WGT_ELEM_BYTES, "acc": env.ACC_ELEM_BYTES}
    for buf, elems in tile_footprint(layer, env, k).items():
        if elems * threads > depth[buf]:
            raise CompileError(f"{buf} buffer needs {elems * threads * elem[buf]} B for {threads} thread(s) of "
                               f"{elems} tiles, has {depth[buf] * elem[buf]} B (knobs {k})")
    return k

"""Schedule knobs as upstream's AutoTVM templates define them, their space and a static check.

A split knob is ``[outer, inner]`` exactly as AutoTVM records it (TopHub logs use this form);
applying it splits the axis by ``factor=inner``. The untuned fallback takes the first entity
of every knob: each split ``[-1, 1]`` and one thread (vta-spec §6.10).
"""
from __future__ import annotations

from collections.abc import Mapping

from ..ir import CompileError
from ._layers import CONV_LAYERS, Dense, Elementwise, GroupConv2D, check_packing, conv_geometry


def _factors(n: int) -> list[int]:
    return [f for f in range(1, n + 1) if n % f == 0]


def split_axes(layer, env) -> dict[str, int]:
    """Extent of the axis each split knob divides, in VTA tiles."""
    check_packing(layer, env)
    if isinstance(layer, CONV_LAYERS):
        # tile_ci splits the reduction: the input blocks of one group
        return {"tile_b": layer.batch // env.BATCH, "tile_h": layer.out_height, "tile_w": layer.out_width,
                "tile_ci": layer.in_channels // conv_geometry(layer).groups // env.BLOCK_IN,
                "tile_co": layer.out_channels // env.BLOCK_OUT}
    if isinstance(layer, Dense):
        return {"tile_b": layer.batch // env.BATCH, "tile_ci": layer.in_features // env.BLOCK_IN,
                "tile_co": layer.out_features // env.BLOCK_OUT}
    if isinstance(layer, Elementwise):
        return {"tile_co": layer.channels // env.BLOCK_OUT, "tile_h": layer.height, "tile_w": layer.width}
    raise CompileError(f"no schedule template for {type(layer).__name__}")


def thread_knobs(layer) -> tuple[str, ...]:
    if isinstance(layer, Elementwise):
        return ()
    return ("oc_nthread", "h_nthread") if isinstance(layer, CONV_LAYERS) else ("oc_nthread",)


def extra_knobs(layer) -> dict[str, list]:
    """Schedule choices beyond upstream's template, each listing upstream's choice first.

    outer_order  order of the output tile loops (h, co, w); the conv is computed at the last
    store_axis   output axis carrying the store pragma: one STORE per co tile (upstream), per
                 row or per pixel
    load_level   input/weight tiles loaded once per reduction tile (upstream) or per ci block
    gemm_order   dense only: upstream leaves the co loop inside the tensorized region, which
                 only lowers with tile_co inner 1; 'co_outer' moves it out
    bias_dtype   with a bias: int32 in DRAM (ACC load) or int8 (ACC_8BIT load, 4x less DMA)
    """
    if isinstance(layer, Elementwise):
        return {"store_axis": ["co", "h", "w"]}
    knobs = {"load_level": ["ci_tile", "ci_block"]}
    if isinstance(layer, CONV_LAYERS):
        knobs["outer_order"] = ["hcw", "chw", "hwc", "cwh", "whc", "wch"]
        knobs["store_axis"] = ["co", "h", "w"]
    else:
        knobs["gemm_order"] = ["upstream", "co_outer"]
    if any(step[0] == "bias" for step in layer.epilogue):
        knobs["bias_dtype"] = ["int32", "int8"]
    return knobs


def knob_space(layer, env) -> dict[str, list]:
    """Every value of every knob (AutoTVM 'factors' policy for splits, {1, 2} for threads)."""
    space = {name: [[extent // f, f] for f in _factors(extent)] for name, extent in split_axes(layer, env).items()}
    for name in thread_knobs(layer):
        space[name] = [1, 2]
    space.update(extra_knobs(layer))
    if "bias_dtype" in space and (env.INP_WIDTH != 8 or env.ACC_WIDTH != 32):
        space["bias_dtype"] = ["int32"]   # ACC_8BIT loads exist only for int8 into int32 (vta-spec §2.1)
    return space


def fallback_knobs(layer, env) -> dict:
    """AutoTVM's fallback config: the first entity of each knob."""
    knobs = {name: [extent, 1] for name, extent in split_axes(layer, env).items()}
    knobs.update({name: 1 for name in thread_knobs(layer)})
    knobs.update({name: values[0] for name, values in extra_knobs(layer).items()})
    return knobs


def normalize_knobs(layer, env, knobs) -> dict:
    """Fill missing knobs from the fallback, resolve ``-1`` outers, validate every split."""
    merged = fallback_knobs(layer, env)
    if knobs is not None and not isinstance(knobs, Mapping):
        raise CompileError(f"knobs must be a mapping of knob name to value (or None), got a "
                           f"{type(knobs).__name__}: {knobs!r:.200}")
    if knobs:
        unknown = [k for k in knobs if k not in merged]
        if unknown:
            raise CompileError(f"unknown knob {unknown[0]!r} for {type(layer).__name__}; "
                               f"knobs: {', '.join(merged)}")
        merged.update(knobs)
    axes = split_axes(layer, env)
    for name, extent in axes.items():
        value = merged[name]
        if not (isinstance(value, (list, tuple)) and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            raise CompileError(f"knob {name} = {value!r}: expected [outer, inner] integers")
        outer, inner = value
        if inner < 1 or extent % inner:
            raise CompileError(f"knob {name} = {list(value)}: inner {inner} does not divide the axis extent {extent}")
        if outer not in (-1, extent // inner):
            raise CompileError(f"knob {name} = {list(value)}: outer x inner must equal the axis extent {extent}")
        merged[name] = [extent // inner, inner]
    for name in thread_knobs(layer):
        if isinstance(merged[name], bool) or merged[name] not in (1, 2):
            raise CompileError(f"knob {name} = {merged[name]!r}: must be 1 or 2")
    for name, values in extra_knobs(layer).items():
        if merged[name] not in values:
            raise CompileError(f"knob {name} = {merged[name]!r}: must be one of {values}")
    return merged


def _dma_dims(extents_strides) -> int:
    """Dimensions left after folding a DRAM region (outer to inner ``(extent, stride)`` in
    elements) the way the DMA injector does: a dim merges into the next inner one when that
    one is contiguous and spans exactly the outer stride; unit dims vanish."""
    dims = [(e, s) for e, s in extents_strides if e > 1]
    merged = []
    for extent, stride in reversed(dims):
        if merged and merged[-1][0] * merged[-1][1] == stride:
            inner_extent, inner_stride = merged.pop()
            merged.append((inner_extent * extent, inner_stride))
        else:
            merged.append((extent, stride))
    # The x dimension of a 2-D copy is contiguous; without one, x is a single element.
    return len(merged) + (0 if merged and merged[0][1] == 1 else 1)


def _check_store_shape(H, W, k, what="output") -> None:
    co, h, w = k["tile_co"][1], k["tile_h"][1], k["tile_w"][1]
    if k["store_axis"] == "co" and _dma_dims([(co, H * W), (h, W), (w, 1)]) > 2:
        raise CompileError(f"{'store' if what == 'output' else 'load'} of a {co}x{h}x{w} {what} tile (tile_co {k['tile_co']}, tile_h {k['tile_h']}, "
                           f"tile_w {k['tile_w']}) is a 3-D copy; the DMA moves 2-D blocks "
                           f"(use whole rows, one co block, or store_axis 'h')")


def _check_conv_dma_shapes(layer, k) -> None:
    """Reject tiles whose DRAM side is not a 2-D block of rows (one y stride, contiguous x)."""
    _check_store_shape(layer.out_height, layer.out_width, k)
    g = conv_geometry(layer)
    ci = k["tile_ci"][1] if k["load_level"] == "ci_tile" else 1
    if not g.padded:
        rows, cols = _input_tile(g, k)
        if _dma_dims([(ci, g.in_height * g.in_width), (rows, g.in_width), (cols, 1)]) > 2:
            raise CompileError(f"input tile of {ci} channel blocks x {rows} rows x {cols} of {g.in_width} columns "
                               f"is a 3-D copy; the DMA moves 2-D blocks (use load_level 'ci_block')")


def _input_tile(g, k) -> tuple[int, int]:
    """Rows and columns of the (padded) input one output tile reads."""
    return ((k["tile_h"][1] - 1) * g.stride + g.kernel, (k["tile_w"][1] - 1) * g.stride + g.kernel)


def _check_group_tiles(layer, env, k) -> None:
    """An output-channel tile must lie within one group: its input tile is then one run of
    the group's input blocks (an affine address; a tile across groups would read two)."""
    per_group = layer.out_channels // layer.groups // env.BLOCK_OUT
    if per_group % k["tile_co"][1]:
        raise CompileError(f"tile_co {k['tile_co']}: an output-channel tile of {k['tile_co'][1]} blocks spans "
                           f"groups of {per_group} block(s) (tile_co inner must divide {per_group})")
    tiles_per_group = per_group // k["tile_co"][1]
    if k["oc_nthread"] > 1 and tiles_per_group > 1 and tiles_per_group % k["oc_nthread"]:
        raise CompileError(f"oc_nthread {k['oc_nthread']} does not divide the {tiles_per_group} output-channel "
                           f"tiles of a group (tile_co {k['tile_co']}); a thread must keep to whole groups")


def _check_gemm_hazard(layer, k) -> None:
    """The runtime refuses a uop that writes the accumulator element of either of the two uops
    before it (the GEMM pipeline has no hazard check). The conv's uop loops are, outer to inner,
    the ci block, w, kernel column, kernel row, co and h loops of a tile (the transposed conv:
    ci block, w outer, co, h outer, w inner, kernel column, kernel row, h inner); the runtime
    folds the two outermost into the instruction's loops and unrolls the rest into uops."""
    ci = k["tile_ci"][1] if k["load_level"] == "ci_tile" else 1
    g = conv_geometry(layer)
    h, w = k["tile_h"][1], k["tile_w"][1]
    if g.order == "transpose":
        from ._templates import transpose_split
        hi, wi = transpose_split(h, 4), transpose_split(w, 2)
        loops = [("ci", ci, False), ("w", w // wi, True), ("co", k["tile_co"][1], True), ("h", h // hi, True),
                 ("w_in", wi, True), ("kw", g.kernel, False), ("kh", g.kernel, False), ("h_in", hi, True)]
    else:
        loops = [("ci", ci, False), ("w", w, True), ("kw", g.kernel, False),
                 ("kh", g.kernel, False), ("co", k["tile_co"][1], True), ("h", h, True)]
    uop_loops = [loop for loop in loops if loop[1] > 1][2:]
    invariant = [i for i, (_, _, writes) in enumerate(uop_loops) if not writes]
    if not invariant:
        return
    distinct = 1
    for _, extent, _ in uop_loops[invariant[-1] + 1:]:
        distinct *= extent
    if distinct < 3:
        raise CompileError(f"the conv's uops would write each accumulator element {distinct} uop(s) after the "
                           f"previous write (tile_co {k['tile_co']}, tile_h {k['tile_h']}, tile_w {k['tile_w']}); "
                           f"VTA needs 3 or more apart (use larger co or h tiles)")


def tile_footprint(layer, env, knobs) -> dict[str, int]:
    """SRAM elements one virtual thread's tiles occupy, per buffer."""
    k = normalize_knobs(layer, env, knobs)
    if isinstance(layer, Elementwise):   # both operands and the result share the acc tile
        return {"inp": 0, "wgt": 0, "acc": 2 * k["tile_co"][1] * k["tile_h"][1] * k["tile_w"][1]}
    ci, co = k["tile_ci"][1], k["tile_co"][1]
    if k["load_level"] == "ci_block":
        ci = 1
    bias = any(step[0] == "bias" for step in layer.epilogue)
    if isinstance(layer, CONV_LAYERS):
        g = conv_geometry(layer)
        h, w = k["tile_h"][1], k["tile_w"][1]
        rows, cols = _input_tile(g, k)
        return {"inp": ci * rows * cols, "wgt": co * ci * g.kernel * g.kernel,
                "acc": co * h * w + (co if bias else 0)}
    b = k["tile_b"][1]
    return {"inp": b * ci, "wgt": co * ci, "acc": b * co + (b * co if bias else 0)}


def buffer_demand(layer, env, knobs) -> dict[str, int]:
    """SRAM elements a knob set's tiles occupy per buffer, every virtual thread's together:
    ``check_knobs`` refuses the knob set wherever one exceeds that buffer's depth
    (``env.INP_DEPTH``, ``env.WGT_DEPTH``, ``env.ACC_DEPTH``)."""
    k = normalize_knobs(layer, env, knobs)
    threads = k.get("oc_nthread", 1) * k.get("h_nthread", 1)
    return {buf: elems * threads for buf, elems in tile_footprint(layer, env, k).items()}


def _check_bias(layer, env, k) -> None:
    if not any(step[0] == "bias" for step in layer.epilogue):
        return
    if isinstance(layer, Dense) and env.BATCH > 1:
        # Dense's bias (1, O/c, 1, c) is shared by the BATCH rows of an accumulator element; the
        # DMA copies whole elements (BATCH x BLOCK_OUT lanes) and cannot repeat a row into them.
        raise CompileError(f"a dense bias of (1, O/{env.BLOCK_OUT}, 1, {env.BLOCK_OUT}) cannot be loaded into "
                           f"accumulator elements of BATCH {env.BATCH} x {env.BLOCK_OUT} lanes "
                           f"(the DMA does not broadcast over the batch); use a geometry with LOG_BATCH 0")
    if k.get("bias_dtype") == "int8" and (env.ACC_WIDTH != 32 or env.INP_WIDTH != 8):
        # An int8 bias is widened by an ACC_8BIT load, which exists only for int8 inputs and
        # int32 accumulators (vta-spec §3.3 step 5); the simulator refuses it elsewhere.
        raise CompileError(f"bias_dtype 'int8' loads the bias with ACC_8BIT, which needs INP_WIDTH 8 and "
                           f"ACC_WIDTH 32 (this geometry: {env.INP_WIDTH}, {env.ACC_WIDTH}); use bias_dtype 'int32'")


def _check_padded_single_line(layer, k) -> None:
    """A padded input tile of one row (or column) — a 1x1 kernel with tile_h (tile_w) inner 1 —
    has no copy loop along that axis: the padding condition then bounds only the tile loop, so
    no per-load pad field expresses it (and some such tiles are padding only)."""
    if not (isinstance(layer, CONV_LAYERS) and conv_geometry(layer).padded and conv_geometry(layer).kernel == 1):
        return
    for knob in ("tile_h", "tile_w"):
        if k[knob][1] == 1:
            raise CompileError(f"{knob} {k[knob]}: a padded 1x1 convolution loads input tiles of one "
                               f"{'row' if knob == 'tile_h' else 'column'}, whose padding VTA's 2-D DMA cannot "
                               f"express (use {knob} inner > 1)")


def _check_uop_kernels(layer, env, k) -> None:
    """The runtime keys a uop kernel by at most one host loop variable (its signature). A
    virtual thread's SRAM offset is one; with more than one batch tile the batch loop outside
    the kernel can be a second, depending on how the loops fold into the GEMM instruction. That
    is decided on the lowered IR, exactly as ``build`` decides it, without running the host
    code: only for the knob sets where it can happen (threads and batch tiles), as lowering
    costs ~10 ms."""
    from ..ir import Allocate, Attr, For, Seq, free_vars
    from ..lower import lower
    from ._templates import template

    s, args = template(layer)(layer, env, k)
    stack = [lower(s, args, env=env).body]
    while stack:
        node = stack.pop()
        if isinstance(node, Attr) and node.key == "coproc_uop_scope":
            names = sorted(v.name for v in free_vars(node.body))
            if len(names) > 1:
                raise CompileError(f"a uop kernel depends on {len(names)} host variables ({', '.join(names)}); "
                                   f"the runtime signature holds one (knobs tile_b {k.get('tile_b')}, "
                                   f"oc_nthread {k.get('oc_nthread', 1)}, h_nthread {k.get('h_nthread', 1)})")
        elif isinstance(node, Seq):
            stack.extend(node.stmts)
        elif isinstance(node, (For, Attr, Allocate)):
            stack.append(node.body)


def check_knobs(layer, env, knobs) -> dict:
    """Static feasibility: raises CompileError naming the knob or buffer; returns the knobs
    normalized. Cheap enough to reject candidates before anything is compiled: it refuses
    exactly the knob sets ``build`` refuses (tests/workloads/test_knob_agreement.py)."""
    k = normalize_knobs(layer, env, knobs)
    _check_bias(layer, env, k)
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
    if isinstance(layer, CONV_LAYERS) and conv_geometry(layer).padded and k["tile_ci"][1] > 1 \
            and k["load_level"] == "ci_tile":
        # A padded input tile of several channel blocks is a 3-D copy with pads on an inner
        # dimension, which VTA's 2-D DMA cannot express (upstream restricts ci tiles to 1 too).
        raise CompileError(f"tile_ci {k['tile_ci']}: a padded input tile spans {k['tile_ci'][1]} channel blocks; "
                           f"the 2-D DMA with padding loads one (use tile_ci inner 1 or load_level 'ci_block')")
    if k.get("oc_nthread", 1) > 1 and k.get("h_nthread", 1) > 1:
        raise CompileError("oc_nthread and h_nthread are both 2: a uop kernel would depend on two thread "
                           "indices, and the runtime keys kernels by one (upstream allows one threaded axis)")
    if isinstance(layer, GroupConv2D):
        _check_group_tiles(layer, env, k)
    if isinstance(layer, CONV_LAYERS):
        _check_conv_dma_shapes(layer, k)
        _check_gemm_hazard(layer, k)
    if isinstance(layer, Elementwise):
        # the operand tiles are loaded whole, so they must be 2-D blocks whatever the store axis
        _check_store_shape(layer.height, layer.width, {**k, "store_axis": "co"}, what="operand")
        _check_store_shape(layer.height, layer.width, k)
    if isinstance(layer, Dense) and k["gemm_order"] == "upstream" and k["tile_co"][1] > 1:
        raise CompileError(f"tile_co {k['tile_co']}: upstream's dense order keeps the co loop inside the GEMM "
                           f"intrinsic, which needs it to be 1 (use gemm_order 'co_outer')")
    _check_padded_single_line(layer, k)
    depth = {"inp": env.INP_DEPTH, "wgt": env.WGT_DEPTH, "acc": env.ACC_DEPTH}
    elem = {"inp": env.INP_ELEM_BYTES, "wgt": env.WGT_ELEM_BYTES, "acc": env.ACC_ELEM_BYTES}
    for buf, need in buffer_demand(layer, env, k).items():
        if need > depth[buf]:
            raise CompileError(f"{buf} buffer needs {need * elem[buf]} B for {threads} thread(s) of "
                               f"{need // threads} tiles, has {depth[buf] * elem[buf]} B (knobs {k})")
    if threads > 1 and layer.batch // env.BATCH > 1:
        _check_uop_kernels(layer, env, k)
    return k


def random_legal_knobs(layer, env, rng, count: int, max_tries: int | None = None) -> list[dict]:
    """Up to ``count`` knob sets drawn uniformly from ``knob_space`` (one ``rng.choice`` per knob,
    in the space's order) that ``check_knobs`` admits: what a search's random draws evaluate.
    Gives up after ``max_tries`` draws (default 50 per set asked for)."""
    space = knob_space(layer, env)
    found: list[dict] = []
    for _ in range(50 * count if max_tries is None else max_tries):
        knobs = {name: rng.choice(values) for name, values in space.items()}
        try:
            check_knobs(layer, env, knobs)
        except CompileError:
            continue
        found.append(knobs)
        if len(found) == count:
            break
    return found

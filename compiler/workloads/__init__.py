"""The op library: layers VTA runs, with upstream's schedule templates and their knobs.

    layer = workloads.Conv2D(batch=1, height=56, width=56, in_channels=64, out_channels=64,
                             kernel=3, stride=1, pad=1)
    mod = workloads.build(layer, env=env, knobs={"tile_h": [7, 8], ...})   # knobs=None: fallback
"""
from __future__ import annotations

import dataclasses

from ._knobs import (buffer_demand, check_knobs, fallback_knobs, knob_space, normalize_knobs, random_legal_knobs,
                     tile_footprint)
from ._layers import (ELEMENTWISE_OPS, TUTORIAL_EPILOGUE, Conv2D, Conv2DTranspose, Dense, Elementwise, GroupConv2D,
                      LAYER_KINDS, epilogue_text, layer_kind, parse_epilogue)
from ._networks import NETWORKS, cpu_ops, describe_network, network, network_ops
from ._onnx import ImportedNetwork, OnnxImportError, import_onnx
from ._packing import pack_inputs, unpack_output
from ._numeric import dilate_input, empty_output, input_shapes, output_shape, random_inputs, reference
from ._resnet import RESNET18_EPILOGUE, dense_shapes, resnet18, resnet18_network
from ._tophub import tophub_knobs

__all__ = ["Conv2D", "Conv2DTranspose", "Dense", "ELEMENTWISE_OPS", "Elementwise", "GroupConv2D", "ImportedNetwork",
           "LAYER_KINDS", "NETWORKS", "OnnxImportError", "RESNET18_EPILOGUE", "TUTORIAL_EPILOGUE", "buffer_demand",
           "build",
           "check_knobs", "cpu_ops", "dense_shapes", "describe_network", "dilate_input", "empty_output",
           "epilogue_text", "fallback_knobs", "import_onnx", "input_shapes", "knob_space", "layer_kind", "network",
           "network_ops",
           "normalize_knobs", "output_shape", "pack_inputs", "parse_epilogue", "random_inputs", "random_legal_knobs",
           "reference", "resnet18", "resnet18_network", "schedule", "stream_columns", "tile_footprint",
           "tophub_knobs", "unpack_output"]


def schedule(layer, env=None, knobs=None):
    """(schedule, argument tensors) of the layer's template under ``knobs``. A grouped conv's
    tensors have their channel axis split into (group, block in group): the packed arrays'
    memory, in another shape (``build`` gives its module the packed shapes)."""
    import hwconfigs

    from ._templates import template

    env = env or hwconfigs.get_env()
    knobs = check_knobs(layer, env, knobs)
    return template(layer)(layer, env, knobs)


def build(layer, env=None, knobs=None, name=None):
    """Compile the layer with its template: a ``compiler.Module`` whose arguments are the inputs
    of ``input_shapes`` then the output. Raises ``compiler.CompileError`` for infeasible knobs."""
    import hwconfigs

    from .. import build as compile_schedule

    env = env or hwconfigs.get_env()
    s, args = schedule(layer, env, knobs)
    mod = compile_schedule(s, args, env=env, name=name or layer.name or type(layer).__name__.lower())
    # A template may declare an argument with its axes split (a grouped conv's channels); the
    # module takes the packed arrays of ``input_shapes``/``output_shape``, the same memory.
    packed = [shape for _, shape, _ in input_shapes(layer, env, knobs)] + [output_shape(layer, env)]
    mod.args = [dataclasses.replace(arg, shape=tuple(shape)) for arg, shape in zip(mod.args, packed)]
    return mod


def stream_columns(layer, env, knobs, reuse: bool = False):
    """The instruction stream ``build`` would emit, generated straight from the knobs as
    columns, with the module's footprint (``_streams.Streams``); None for constructs the
    generator does not cover. Raises CompileError for refused knobs. Imports numba on first use."""
    from ._streams import stream_columns as generate

    return generate(layer, env, knobs, reuse)

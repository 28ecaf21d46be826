"""Upstream's tuned schedules as warm starts: the knob sets TopHub ships for VTA on a Pynq.

``data/tophub_knobs.json`` is the published TopHub log for VTA (ResNet-18/50 on 1x16 and 4x8,
the LSTM cell's dense, MobileNet-G's grouped and DCGAN's transposed convs, ...), parsed into
records of (hardware, layer shape, knobs). A record answers a layer when the shape matches and the core geometry (batch, block, widths) is the
record's: TopHub keys its logs by the bitstream's geometry, and a knob set tuned for one geometry
is a different schedule on another. The buffer sizes are not part of the match; whether the
schedule fits this hardware's buffers is for ``check_knobs`` to say.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from ._layers import CONV_LAYERS, Conv2D, Conv2DTranspose, Dense, GroupConv2D

_DATA = Path(__file__).with_name("data") / "tophub_knobs.json"
_GEOMETRY = ("LOG_BATCH", "LOG_BLOCK", "LOG_INP_WIDTH", "LOG_WGT_WIDTH", "LOG_ACC_WIDTH")


@functools.lru_cache(maxsize=1)
def _records() -> tuple:
    """(geometry, shape key, knobs) of every record, in the file's order."""
    out = []
    for section in json.loads(_DATA.read_text())["sections"]:
        geometry = tuple(section["hw"][key] for key in _GEOMETRY)
        for record in section["records"]:
            out.append((geometry, _record_shape(record["layer"]), record["knobs"]))
    return tuple(out)


def _record_shape(layer: dict) -> tuple:
    if layer["op"] == "dense":
        return ("dense", layer["N"], layer["in_features"], layer["out_features"])
    shape = (layer["op"], layer["N"], layer["C_in"], layer["H"], layer["W"], layer["C_out"], layer["KH"],
             _square(layer["stride"]), _square(layer["pad"]))
    if layer["op"] == "group_conv2d":
        return shape + (layer["groups"],)
    if layer["op"] == "conv2d_transpose":
        return shape + (_square(layer["output_padding"]),)
    return shape


def _square(value):
    """One number for a square stride/pad/output padding, as our layers hold it; a record with
    unequal sides keeps its list and never matches."""
    if isinstance(value, list):
        return value[0] if len(set(value)) == 1 else tuple(value)
    return value


def _layer_shape(layer) -> tuple | None:
    if isinstance(layer, Dense):
        return ("dense", layer.batch, layer.in_features, layer.out_features)
    if isinstance(layer, CONV_LAYERS):
        op = {Conv2D: "conv2d", GroupConv2D: "group_conv2d", Conv2DTranspose: "conv2d_transpose"}[type(layer)]
        shape = (op, layer.batch, layer.in_channels, layer.height, layer.width, layer.out_channels,
                 layer.kernel, layer.stride, layer.pad)
        if isinstance(layer, GroupConv2D):
            return shape + (layer.groups,)
        if isinstance(layer, Conv2DTranspose):
            return shape + (layer.output_padding,)
        return shape
    return None


def tophub_knobs(layer, env) -> list[dict]:
    """TopHub's knob sets for this layer on this core geometry (usually one; none when TopHub
    never tuned it), as AutoTVM wrote them (``-1`` outers included)."""
    shape = _layer_shape(layer)
    if shape is None:
        return []
    geometry = tuple(getattr(env, key) for key in _GEOMETRY)
    found = []
    for rec_geometry, rec_shape, knobs in _records():
        if rec_geometry == geometry and rec_shape == shape and knobs not in found:
            found.append(dict(knobs))
    return found

"""Built-in networks as data: every op VTA offloads, in execution order, with its epilogue.

A network is described by small tables (stages, blocks, channel lists) that one mechanism
expands into its *instances* (``network_ops``: tag, layer with the epilogue of its own fused
function) and groups into its *layers* (``network``: one per distinct layer name, with ``.count``,
in the order of the description's layer table). What upstream's graph packing
(vta/python/vta/top/graphpack.py) leaves on the CPU is listed with the reason (``cpu_ops``).

Upstream packs the graph between ``start_name`` and ``stop_name`` (deploy_classification.py:
``nn.max_pool2d`` .. ``nn.global_avg_pool2d``; deploy_detection.py for YOLOv3-tiny:
``nn.max_pool2d`` .. ``cast``) and quantizes with ``skip_conv_layers=[0]``: the first
convolution (3 input channels), the pooling and the classifier stay on the CPU. Inside the packed
region VTA runs conv2d, group conv2d, conv2d_transpose and dense with their fused
bias/shift/clip epilogue and int32 ``add`` of two equal shapes (a residual add); every other
operator runs on the CPU in the packed layout.
"""
from __future__ import annotations

import dataclasses

from ..ir import CompileError
from ._layers import LAYER_KINDS
from ._resnet import (CONV_BN, CONV_BN_RELU, LAST_RESIDUAL_ADD, RESIDUAL_ADD, RESIDUAL_EPILOGUE,
                      RESNET18_EPILOGUE, _RESNET18)

# Relay's realize of a conv followed by batch-norm (folded into a per-channel bias) and no relu
# on VTA (YOLO's leaky relu runs on the CPU): conv2d-add(bias)-add(round)-right_shift-clip-cast.
CONV_BN_ROUND = RESNET18_EPILOGUE
# A linear conv or dense with its own bias (YOLO's detection heads, the LSTM gates).
LINEAR_BIAS = RESNET18_EPILOGUE


@dataclasses.dataclass(frozen=True)
class Network:
    """A network as data: ``layers`` maps a layer name to (kind, dimensions, task epilogue) in
    listing order; ``sequence`` lists (tag, layer name, epilogue of that instance) in execution
    order; ``cpu`` lists (operator, why it stays on the CPU)."""

    name: str
    title: str
    layers: dict
    sequence: tuple
    cpu: tuple


def _make(kind: str, dims: dict, batch: int, epilogue, name: str, count: int = 1):
    return LAYER_KINDS[kind](batch=batch, **dims, epilogue=epilogue, count=count, name=name)


class _Builder:
    """Collects a network's instances; a layer's name is found from its dimensions (the given
    names first, then ``prefix`` + the next number in order of first appearance)."""

    def __init__(self, names: dict | None = None, start: int = 1):
        self.layers: dict = {}
        self.sequence: list = []
        self.names = dict(names or {})
        self.next = dict.fromkeys(("C", "T", "D", "R"), start)

    def add(self, tag: str, kind: str, dims: dict, epilogue, task_epilogue=None, prefix="C"):
        key = (kind, tuple(sorted(dims.items())))
        name = self.names.get(key)
        if name is None:
            name = f"{prefix}{self.next[prefix]}"
            self.next[prefix] += 1
            self.names[key] = name
        if name not in self.layers:
            self.layers[name] = (kind, dict(dims), task_epilogue or epilogue)
        self.sequence.append((tag, name, epilogue))
        return name


def _conv(hw, ci, co, k, s, p) -> dict:
    return {"height": hw, "width": hw, "in_channels": ci, "out_channels": co, "kernel": k, "stride": s, "pad": p}


def _resnet(name, title, depths, bottleneck: bool) -> Network:
    """ResNet v1 (224x224): stages of basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1 x4) blocks; the
    stride sits on the first 3x3 of a stage (TopHub's ResNet-50 shapes), a 1x1 shortcut conv
    where the shape changes, one residual add per block."""
    if bottleneck:
        builder = _Builder(start=2)
    else:   # ResNet-18's historical names (and layer order) for the same shapes
        builder = _Builder({("conv2d", tuple(sorted(_conv(hw, ci, co, k, s, p).items()))): n
                            for n, hw, ci, co, k, s, p, _ in _RESNET18}, start=2)
        for n, hw, ci, co, k, s, p, _ in _RESNET18:
            builder.layers[n] = ("conv2d", _conv(hw, ci, co, k, s, p), RESNET18_EPILOGUE)
    channels, hw = 64, 56         # after the CPU's first conv and max pool
    for stage, blocks in enumerate(depths, start=1):
        width = 64 << (stage - 1)
        out = width * 4 if bottleneck else width
        for block in range(1, blocks + 1):
            tag = f"stage{stage}.block{block}"
            stride = 2 if stage > 1 and block == 1 else 1
            out_hw = hw // stride
            if bottleneck:
                builder.add(f"{tag}.conv1", "conv2d", _conv(hw, channels, width, 1, 1, 0), CONV_BN_RELU)
                builder.add(f"{tag}.conv2", "conv2d", _conv(hw, width, width, 3, stride, 1), CONV_BN_RELU)
                builder.add(f"{tag}.conv3", "conv2d", _conv(out_hw, width, out, 1, 1, 0), CONV_BN)
            else:
                builder.add(f"{tag}.conv1", "conv2d", _conv(hw, channels, width, 3, stride, 1), CONV_BN_RELU,
                            RESNET18_EPILOGUE)
                builder.add(f"{tag}.conv2", "conv2d", _conv(out_hw, width, width, 3, 1, 1), CONV_BN, RESNET18_EPILOGUE)
            if channels != out or stride != 1:
                builder.add(f"{tag}.shortcut", "conv2d", _conv(hw, channels, out, 1, stride, 0), CONV_BN,
                            None if bottleneck else RESNET18_EPILOGUE)
            last = stage == len(depths) and block == blocks
            dims = {"channels": out, "height": out_hw, "width": out_hw, "op": "add"}
            builder.names.setdefault(("elementwise", tuple(sorted(dims.items()))), f"R{stage}")
            builder.add(f"{tag}.add", "elementwise", dims, LAST_RESIDUAL_ADD if last else RESIDUAL_ADD,
                        RESIDUAL_EPILOGUE, prefix="R")
            channels, hw = out, out_hw
    cpu = (("conv2d 3->64 7x7 stride 2 (the first conv)", "3 input channels; quantization skips it "
            "(skip_conv_layers=[0]) and packing starts after it"),
           ("max_pool2d 3x3 stride 2", "upstream's start_name: packing starts at its output"),
           ("global_avg_pool2d", "upstream's stop_name: packing ends before it"),
           ("dense 512->1000" if not bottleneck else "dense 2048->1000", "the classifier, after stop_name"),
           ("softmax", "after stop_name"))
    return Network(name, title, builder.layers, tuple(builder.sequence), cpu)


# MobileNet v1 at 224x224 with each depthwise 3x3 conv as a grouped conv of 16 channels per group
# (MobileNet-G, upstream's group_conv2d benchmark and TopHub's records): (channels in, channels
# out of the pointwise conv, stride of the grouped conv), after the CPU's first conv (3->32, 112x112).
_MOBILENET = ((32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
              (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 1024, 2),
              (1024, 1024, 1))
MOBILENET_GROUP_CHANNELS = 16


def _mobilenet_g() -> Network:
    builder = _Builder()
    hw = 112
    for block, (ci, co, stride) in enumerate(_MOBILENET, start=1):
        dims = {**_conv(hw, ci, ci, 3, stride, 1), "groups": ci // MOBILENET_GROUP_CHANNELS}
        builder.add(f"block{block}.group_conv", "group_conv2d", dims, CONV_BN_RELU, prefix="D")
        hw //= stride
        builder.add(f"block{block}.pointwise", "conv2d", _conv(hw, ci, co, 1, 1, 0), CONV_BN_RELU, prefix="C")
    cpu = (("conv2d 3->32 3x3 stride 2 (the first conv)", "3 input channels; skip_conv_layers=[0]"),
           ("global_avg_pool2d", "upstream's stop_name: packing ends before it"),
           ("dense 1024->1000", "the classifier, after stop_name"), ("softmax", "after stop_name"))
    return Network("mobilenet_g", "MobileNet with grouped convolutions (MobileNet-G)", builder.layers,
                   tuple(builder.sequence), cpu)


# DCGAN's generator (64x64 output): after the CPU's dense from the noise vector and its reshape
# to 1024x4x4, transposed 4x4 convs of stride 2, pad 1, each with batch-norm and relu (TopHub's
# CT1..CT3); the last one has 3 output channels and tanh.
_DCGAN = ((4, 1024, 512), (8, 512, 256), (16, 256, 128))


def _dcgan() -> Network:
    builder = _Builder()
    for index, (hw, ci, co) in enumerate(_DCGAN, start=1):
        builder.add(f"deconv{index}", "conv2d_transpose", _conv(hw, ci, co, 4, 2, 1), CONV_BN_RELU, prefix="T")
    cpu = (("dense 100->16384 and reshape to 1024x4x4", "the generator's input projection, before packing"),
           ("conv2d_transpose 128->3 4x4 stride 2", "3 output channels: not a whole VTA tile; tanh follows"),
           ("tanh", "no VTA ALU lowering"))
    names = {name: name.replace("T", "CT") for name in builder.layers}
    return Network("dcgan", "DCGAN generator", {names[n]: v for n, v in builder.layers.items()},
                   tuple((tag, names[n], e) for tag, n, e in builder.sequence), cpu)


# YOLOv3-tiny (Darknet, 416x416), the packed region of deploy_detection.py: (tag, H=W, in, out,
# kernel, epilogue). Every conv has batch-norm (a folded bias) and leaky relu (CPU) except the two
# detection heads (255 output channels, linear with bias; graph packing pads them to whole tiles).
_YOLO_HEAD_CHANNELS = 255
_YOLOV3_TINY = (("conv2", 208, 16, 32, 3, CONV_BN_ROUND), ("conv3", 104, 32, 64, 3, CONV_BN_ROUND),
                ("conv4", 52, 64, 128, 3, CONV_BN_ROUND), ("conv5", 26, 128, 256, 3, CONV_BN_ROUND),
                ("conv6", 13, 256, 512, 3, CONV_BN_ROUND), ("conv7", 13, 512, 1024, 3, CONV_BN_ROUND),
                ("conv8", 13, 1024, 256, 1, CONV_BN_ROUND), ("conv9", 13, 256, 512, 3, CONV_BN_ROUND),
                ("head1", 13, 512, _YOLO_HEAD_CHANNELS, 1, LINEAR_BIAS), ("conv10", 13, 256, 128, 1, CONV_BN_ROUND),
                ("conv11", 26, 384, 256, 3, CONV_BN_ROUND), ("head2", 26, 256, _YOLO_HEAD_CHANNELS, 1, LINEAR_BIAS))


def _padded(channels: int, tile: int = 16) -> int:
    """graphpack's _weight_shape_match: output channels padded up to a whole tile."""
    return -(-channels // tile) * tile


def _yolov3_tiny() -> Network:
    builder = _Builder(start=2)
    for tag, hw, ci, co, k, epilogue in _YOLOV3_TINY:
        builder.add(tag, "conv2d", _conv(hw, ci, _padded(co), k, 1, k // 2), epilogue)
    cpu = (("conv2d 3->16 3x3 (the first conv) and its leaky relu", "3 input channels; skip_conv_layers=[0]"),
           ("max_pool2d (6)", "no VTA lowering; the first is upstream's start_name"),
           ("leaky_relu (after every conv but the heads)", "no VTA ALU lowering (a multiply by 0.1)"),
           ("upsampling 2x", "no VTA lowering (runs in the packed layout)"),
           ("concatenate (route)", "no VTA lowering"),
           ("yolo (2 detection outputs)", "after stop_name"))
    return Network("yolov3_tiny", "YOLOv3-tiny", builder.layers, tuple(builder.sequence), cpu)


def _lstm_cell() -> Network:
    """The LSTM cell of TopHub's record: its gates' dense over [input, hidden] (256 -> 128)."""
    builder = _Builder()
    builder.add("gates", "dense", {"in_features": 256, "out_features": 128}, LINEAR_BIAS, prefix="D")
    cpu = (("sigmoid, tanh (the gate activations)", "no VTA ALU lowering"),
           ("multiply and add of the cell state", "floating-point state update on the CPU"))
    return Network("lstm_cell", "LSTM cell (its gates' dense)", builder.layers, tuple(builder.sequence), cpu)


_DESCRIPTIONS = {
    "resnet18": lambda: _resnet("resnet18", "ResNet-18 v1", (2, 2, 2, 2), False),
    "resnet34": lambda: _resnet("resnet34", "ResNet-34 v1", (3, 4, 6, 3), False),
    "resnet50": lambda: _resnet("resnet50", "ResNet-50 v1", (3, 4, 6, 3), True),
    "mobilenet_g": _mobilenet_g,
    "dcgan": _dcgan,
    "yolov3_tiny": _yolov3_tiny,
    "lstm_cell": _lstm_cell,
}
NETWORKS = tuple(_DESCRIPTIONS)


def describe_network(name: str) -> Network:
    """The network's description; an unknown name is a CompileError listing the known ones."""
    if not isinstance(name, str) or name not in _DESCRIPTIONS:
        import difflib

        close = difflib.get_close_matches(str(name), NETWORKS, n=1) if isinstance(name, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise CompileError(f"unknown network {name!r}{hint}; built-in networks: {', '.join(NETWORKS)}")
    return _DESCRIPTIONS[name]()


def network(name: str, batch: int = 1) -> list:
    """The ordered list of the layers VTA offloads from network ``name``, one per distinct layer,
    each with its ``.name`` and ``.count`` (instances in the network)."""
    net = describe_network(name)
    counts = {}
    for _, layer_name, _ in net.sequence:
        counts[layer_name] = counts.get(layer_name, 0) + 1
    return [_make(kind, dims, batch, epilogue, layer_name, counts[layer_name])
            for layer_name, (kind, dims, epilogue) in net.layers.items() if counts.get(layer_name)]


def network_ops(name: str, batch: int = 1) -> list:
    """Every offloaded op instance in execution order, as (tag, layer) with count 1 and the
    epilogue of the instance's own fused function."""
    net = describe_network(name)
    return [(tag, _make(net.layers[layer_name][0], net.layers[layer_name][1], batch, epilogue, layer_name))
            for tag, layer_name, epilogue in net.sequence]


def cpu_ops(name: str) -> tuple:
    """(operator, why) of what stays on the CPU when upstream deploys the network."""
    return describe_network(name).cpu

"""ResNet-18's offloaded conv layers as VTA runs them (batch 1, 224x224 input; the first conv
and the classifier stay on the CPU). Names and multiplicities follow the TopHub records."""
from __future__ import annotations

from ._layers import Conv2D

# The fused op of every offloaded conv in upstream's quantized ResNet-18 is
# conv2d -> add(bias) -> requantize -> clip -> cast: batch-norm folds into a per-channel int32
# bias, DMA-loaded into the accumulator per output tile; Relay's realize requantizes with
# upward rounding, add(1 << (s-1)) then right_shift(s); VTA lowers clip as min then max.
RESNET18_EPILOGUE = (("bias",), ("add", 1 << 7), ("shr", 8), ("clip", -127, 127))
# The residual additions run as ALU-only ops (add.vta on the sim target), one per basic block.
RESIDUAL_EPILOGUE = (("clip", 0, 127),)

# Per instance, upstream's fused functions differ (Relay's realize, src/relay/quantize/realize.cc):
# a conv followed by batch-norm and relu fuses as conv2d-add(bias)-relu-add(round)-right_shift-
# clip-cast; a conv followed by batch-norm only (the second conv of a block, the 1x1 shortcut)
# has its rounding constant folded into the bias: conv2d-add-right_shift-clip-cast. The residual
# add of a block adds two int32 operands, applies relu and clips to the next layer's input range
# (same scale, so no shift).
CONV_BN_RELU = (("bias",), ("relu",), ("add", 1 << 7), ("shr", 8), ("clip", -127, 127))
CONV_BN = (("bias",), ("shr", 8), ("clip", -127, 127))
RESIDUAL_ADD = (("relu",), ("clip", -127, 127))
# The network's last residual add feeds the CPU's global average pooling, not a VTA conv:
# nothing requantizes it to a conv input, so it has no clip.
LAST_RESIDUAL_ADD = (("relu",),)

# (name, H=W, in channels, out channels, kernel, stride, pad, count in the network)
_RESNET18 = (
    ("C2", 56, 64, 64, 3, 1, 1, 4),
    ("C3", 56, 64, 128, 3, 2, 1, 1),
    ("C4", 56, 64, 128, 1, 2, 0, 1),
    ("C5", 28, 128, 128, 3, 1, 1, 3),
    ("C6", 28, 128, 256, 3, 2, 1, 1),
    ("C7", 28, 128, 256, 1, 2, 0, 1),
    ("C8", 14, 256, 256, 3, 1, 1, 3),
    ("C9", 14, 256, 512, 3, 2, 1, 1),
    ("C10", 14, 256, 512, 1, 2, 0, 1),
    ("C11", 7, 512, 512, 3, 1, 1, 3),
)


def resnet18(batch: int = 1, epilogue=RESNET18_EPILOGUE, residual_adds: bool = False) -> dict:
    """Ordered mapping C2..C11 -> Conv2D with ``.count`` (the conv layers VTA runs, each fused
    with ``epilogue``); with ``residual_adds`` also R1..R4, the residual additions of the four
    stages (two per stage) as ALU-only Elementwise ops. The layers of ``network("resnet18")``."""
    import dataclasses

    from ._networks import network

    layers = {}
    for layer in network("resnet18", batch):
        if isinstance(layer, Conv2D):
            layers[layer.name] = layer if epilogue == RESNET18_EPILOGUE else dataclasses.replace(layer, epilogue=epilogue)
        elif residual_adds:
            layers[layer.name] = layer
    return layers


def dense_shapes(batch: int = 1) -> dict:
    """A few fully-connected shapes (the blocked-GEMM tutorial's and classifier-sized ones)."""
    from ._layers import Dense

    return {"fc1024": Dense(batch=batch, in_features=1024, out_features=1024, name="fc1024"),
            "fc512": Dense(batch=batch, in_features=512, out_features=1024, name="fc512"),
            "fc256": Dense(batch=batch, in_features=256, out_features=256, name="fc256")}


def resnet18_network(batch: int = 1) -> list:
    """Every VTA-offloaded op of ResNet-18 in execution order, as (name, layer) pairs with count 1:
    the 19 convs with the epilogue of their own fused function and the 8 residual additions."""
    from ._networks import network_ops

    return network_ops("resnet18", batch)

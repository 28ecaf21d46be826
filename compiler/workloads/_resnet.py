"""ResNet-18's offloaded conv layers as VTA runs them (batch 1, 224x224 input; the first conv
and the classifier stay on the CPU). Names and multiplicities follow the TopHub records."""
from __future__ import annotations

from ._layers import Conv2D, Elementwise

# The fused op of every offloaded conv in upstream's quantized ResNet-18 is
# conv2d -> add(bias) -> requantize -> clip -> cast: batch-norm folds into a per-channel int32
# bias, DMA-loaded into the accumulator per output tile; Relay's realize requantizes with
# upward rounding, add(1 << (s-1)) then right_shift(s); VTA lowers clip as min then max.
RESNET18_EPILOGUE = (("bias",), ("add", 1 << 7), ("shr", 8), ("clip", -127, 127))
# The residual additions run as ALU-only ops (add.vta on the sim target), one per basic block.
RESIDUAL_EPILOGUE = (("clip", 0, 127),)

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
    stages (two per stage) as ALU-only Elementwise ops."""
    layers = {name: Conv2D(batch=batch, height=hw, width=hw, in_channels=ci, out_channels=co, kernel=k,
                           stride=s, pad=p, epilogue=epilogue, count=count, name=name)
              for name, hw, ci, co, k, s, p, count in _RESNET18}
    if residual_adds:
        for stage, (hw, channels) in enumerate(((56, 64), (28, 128), (14, 256), (7, 512)), start=1):
            name = f"R{stage}"
            layers[name] = Elementwise(batch=batch, channels=channels, height=hw, width=hw, op="add",
                                       epilogue=RESIDUAL_EPILOGUE, count=2, name=name)
    return layers


def dense_shapes(batch: int = 1) -> dict:
    """A few fully-connected shapes (the blocked-GEMM tutorial's and classifier-sized ones)."""
    from ._layers import Dense

    return {"fc1024": Dense(batch=batch, in_features=1024, out_features=1024, name="fc1024"),
            "fc512": Dense(batch=batch, in_features=512, out_features=1024, name="fc512"),
            "fc256": Dense(batch=batch, in_features=256, out_features=256, name="fc256")}

"""Layer specifications: what is computed, independent of how it is scheduled."""
from __future__ import annotations

import dataclasses

from ..ir import CompileError

# Epilogue steps fused after the GEMM/conv in the accumulator, in order (vta-spec §6.10):
#   ("bias",)          add a per-output-channel int32 bias, DMA-loaded into the acc buffer
#   ("add", v)         add an immediate (the rounding term Relay puts before a right shift)
#   ("shr", n)         arithmetic shift right by n
#   ("max", v)/("min", v)  clamp with an immediate
#   ("relu",)          max(x, 0)
#   ("clip", lo, hi)   Relay's clip as VTA lowers it: min(x, hi) then max(x, lo)
# Every epilogue ends with the cast to the int8 output (the STORE truncates).
TUTORIAL_EPILOGUE = (("shr", 8), ("max", 0), ("min", 127))
# Largest value of each layer dimension: far beyond any network VTA runs, small enough that the
# knob spaces (every divisor of every axis) and the compiler's tables stay finite.
MAX_DIM = {"batch": 1 << 12, "height": 1 << 14, "width": 1 << 14, "in_channels": 1 << 16,
           "out_channels": 1 << 16, "in_features": 1 << 20, "out_features": 1 << 20, "channels": 1 << 16,
           "kernel": 64, "stride": 64, "pad": 64, "count": 1 << 20, "groups": 1 << 16, "output_padding": 63}
# Fields that may be 0.
_MAY_BE_ZERO = ("pad", "output_padding")


def _check_dims(layer, fields, low: int = 1) -> None:
    for field in fields:
        value = getattr(layer, field)
        low_here = 0 if field in _MAY_BE_ZERO else low
        if isinstance(value, bool) or not isinstance(value, int) or not low_here <= value <= MAX_DIM[field]:
            shown = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "a huge integer"
            raise CompileError(f"{type(layer).__name__}.{field} = {shown}: must be an integer in "
                               f"[{low_here}, {MAX_DIM[field]}]")


class _StridedWindow:
    """Output extent of a strided ``kernel`` window over the input padded by ``pad``."""

    @property
    def out_height(self) -> int:
        return (self.height + 2 * self.pad - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        return (self.width + 2 * self.pad - self.kernel) // self.stride + 1


def _check_window(layer) -> None:
    padded = (layer.height + 2 * layer.pad, layer.width + 2 * layer.pad)
    if layer.kernel > min(padded):
        raise CompileError(f"{type(layer).__name__}: kernel {layer.kernel} larger than the padded input "
                           f"{padded[0]}x{padded[1]}")


STEP_ARITY = {"bias": 0, "relu": 0, "add": 1, "shr": 1, "max": 1, "min": 1, "clip": 2}
# Every constant becomes the ALU's immediate, a 16-bit two's-complement field (vta-spec §2.1,
# §2.5); a wider value would be truncated to something else than the layer says. Shift counts
# of 32 or more (or negative) are host-dependent in upstream's fsim (vta-spec §3.5).
IMM_MIN, IMM_MAX = -(1 << 15), (1 << 15) - 1
STEP_RANGE = {"add": (IMM_MIN, IMM_MAX), "max": (IMM_MIN, IMM_MAX), "min": (IMM_MIN, IMM_MAX),
              "clip": (IMM_MIN, IMM_MAX), "shr": (0, 31)}


def check_epilogue(epilogue) -> tuple:
    if isinstance(epilogue, (str, bytes)) or not isinstance(epilogue, (tuple, list)):
        raise CompileError(f"epilogue {epilogue!r}: expected a sequence of steps such as (('shr', 8), ('relu',))")
    steps = tuple(tuple(step) if isinstance(step, (tuple, list)) else (step,) for step in epilogue)
    for step in steps:
        name = step[0] if step else None
        if name not in STEP_ARITY:
            raise CompileError(f"epilogue step {step!r}: unknown operation {name!r}; "
                               f"known: {', '.join(STEP_ARITY)}")
        if len(step) - 1 != STEP_ARITY[name]:
            raise CompileError(f"epilogue step {step!r}: {name} takes {STEP_ARITY[name]} argument(s)")
        if any(isinstance(v, bool) or not isinstance(v, int) for v in step[1:]):
            raise CompileError(f"epilogue step {step!r}: arguments must be integers")
        if name in STEP_RANGE:
            low, high = STEP_RANGE[name]
            for v in step[1:]:
                if not low <= v <= high:
                    what = "shift count" if name == "shr" else "constant (the ALU's 16-bit signed immediate)"
                    raise CompileError(f"epilogue step {step!r}: {name} {what} {v} is out of range [{low}, {high}]")
    if sum(step[0] == "bias" for step in steps) > 1:
        raise CompileError("epilogue: at most one bias step")
    return steps


def epilogue_text(epilogue) -> str:
    """The epilogue as a study file writes it: ``"bias, relu, add 128, shr 8, clip -127 127"``."""
    return ", ".join(" ".join(str(part) for part in step) for step in check_epilogue(epilogue))


def parse_epilogue(text: str) -> tuple:
    """The steps of an epilogue written as ``epilogue_text`` does ("" is no step)."""
    if not isinstance(text, str):
        raise CompileError(f"epilogue {text!r}: expected a string such as 'bias, shr 8, clip -127 127'")
    steps = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, *args = item.split()
        try:
            steps.append((name, *(int(a) for a in args)))
        except ValueError:
            raise CompileError(f"epilogue step {item!r}: arguments must be integers") from None
    return check_epilogue(steps)


@dataclasses.dataclass(frozen=True)
class Conv2D(_StridedWindow):
    """A 2-D convolution in VTA's packed NCHWnc layout (square kernel, stride and pad)."""

    batch: int
    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    pad: int = 0
    epilogue: tuple = TUTORIAL_EPILOGUE
    count: int = 1
    name: str = ""

    def __post_init__(self):
        _check_dims(self, ("batch", "height", "width", "in_channels", "out_channels", "kernel", "stride",
                           "pad", "count"))
        _check_window(self)
        object.__setattr__(self, "epilogue", check_epilogue(self.epilogue))

    @property
    def macs(self) -> int:
        return (self.batch * self.out_channels * self.out_height * self.out_width
                * self.in_channels * self.kernel * self.kernel)

    def describe(self) -> str:
        return (f"{self.height}x{self.width}x{self.in_channels}->{self.out_channels}, {self.kernel}x{self.kernel}, "
                f"stride {self.stride}, pad {self.pad}, batch {self.batch}")


@dataclasses.dataclass(frozen=True)
class GroupConv2D(_StridedWindow):
    """A grouped 2-D convolution (MobileNet-style) in VTA's packed NCHWnc layout, as upstream's
    ``group_conv2d_packed``: the ``groups`` input-channel groups each feed ``out_channels /
    groups`` outputs. Data (N/b, C/c, H, W, b, c); kernel (O/c, C/groups/c, KH, KW, c, c), so
    each group's in and out channels must be whole VTA blocks (a depthwise conv with one channel
    per group is not a VTA layer)."""

    batch: int
    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    epilogue: tuple = TUTORIAL_EPILOGUE
    count: int = 1
    name: str = ""

    def __post_init__(self):
        _check_dims(self, ("batch", "height", "width", "in_channels", "out_channels", "kernel", "stride",
                           "pad", "groups", "count"))
        for field in ("in_channels", "out_channels"):
            if getattr(self, field) % self.groups:
                raise CompileError(f"GroupConv2D.groups = {self.groups} does not divide {field} "
                                   f"{getattr(self, field)}")
        _check_window(self)
        object.__setattr__(self, "epilogue", check_epilogue(self.epilogue))

    @property
    def group_in_channels(self) -> int:
        return self.in_channels // self.groups

    @property
    def macs(self) -> int:
        return (self.batch * self.out_channels * self.out_height * self.out_width
                * self.group_in_channels * self.kernel * self.kernel)

    def describe(self) -> str:
        return (f"{self.height}x{self.width}x{self.in_channels}->{self.out_channels}, {self.kernel}x{self.kernel}, "
                f"stride {self.stride}, pad {self.pad}, {self.groups} groups, batch {self.batch}")


@dataclasses.dataclass(frozen=True)
class Conv2DTranspose:
    """A transposed 2-D convolution (DCGAN's generator) as upstream's ``conv2d_transpose_packed``
    runs it: the input is dilated by ``stride`` (zeros between pixels, on the CPU, as upstream's
    ``topi.nn.dilate`` stage is), padded by ``kernel - 1 - pad`` (plus ``output_padding`` at the
    bottom and right) by the DMA, and convolved with stride 1. The module's data argument is that
    dilated input, (N/b, C/c, (H-1)*stride+1, (W-1)*stride+1, b, c) (``dilate_input`` makes it);
    the kernel (O/c, C/c, KH, KW, c, c) is applied as a plain correlation, i.e. it is the
    ConvTranspose weight with in/out swapped and both spatial axes flipped, as upstream packs it."""

    batch: int
    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    pad: int = 0
    output_padding: int = 0
    epilogue: tuple = TUTORIAL_EPILOGUE
    count: int = 1
    name: str = ""

    def __post_init__(self):
        _check_dims(self, ("batch", "height", "width", "in_channels", "out_channels", "kernel", "stride",
                           "pad", "output_padding", "count"))
        if self.pad > self.kernel - 1:
            raise CompileError(f"Conv2DTranspose.pad = {self.pad}: at most kernel - 1 = {self.kernel - 1} "
                               f"(the dilated input is padded by kernel - 1 - pad)")
        if self.output_padding >= self.stride:
            raise CompileError(f"Conv2DTranspose.output_padding = {self.output_padding}: must be smaller than "
                               f"the stride {self.stride}")
        if self.out_height < 1 or self.out_width < 1:
            raise CompileError(f"Conv2DTranspose: pad {self.pad} leaves no output of the {self.height}x{self.width} "
                               f"input (output {self.out_height}x{self.out_width})")
        object.__setattr__(self, "epilogue", check_epilogue(self.epilogue))

    @property
    def dilated_height(self) -> int:
        return (self.height - 1) * self.stride + 1

    @property
    def dilated_width(self) -> int:
        return (self.width - 1) * self.stride + 1

    @property
    def out_height(self) -> int:
        return (self.height - 1) * self.stride - 2 * self.pad + self.kernel + self.output_padding

    @property
    def out_width(self) -> int:
        return (self.width - 1) * self.stride - 2 * self.pad + self.kernel + self.output_padding

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the transposed conv itself (the zeros the dilation inserts
        do not count)."""
        return self.batch * self.in_channels * self.height * self.width * self.out_channels * self.kernel ** 2

    def describe(self) -> str:
        extra = f", output padding {self.output_padding}" if self.output_padding else ""
        return (f"{self.height}x{self.width}x{self.in_channels}->{self.out_channels}, transposed "
                f"{self.kernel}x{self.kernel}, stride {self.stride}, pad {self.pad}{extra}, batch {self.batch}")


# The conv-like layers: one packed conv template, parameterized by ``conv_geometry``.
CONV_LAYERS = (Conv2D, GroupConv2D, Conv2DTranspose)


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """The packed convolution VTA runs for a conv-like layer: a ``stride``-strided correlation
    with a ``kernel`` x ``kernel`` window over the DRAM input (``in_height`` x ``in_width``),
    padded by the DMA (``pads`` top, left, bottom, right), each output channel reading the
    input channels of its group. ``order`` names the conv stage's loop order inside a tile:
    upstream's conv2d/group conv2d order, or the transposed conv's."""

    in_height: int
    in_width: int
    pads: tuple
    stride: int
    kernel: int
    out_height: int
    out_width: int
    groups: int
    order: str

    @property
    def padded(self) -> bool:
        return any(self.pads)


def conv_geometry(layer) -> ConvGeometry:
    if isinstance(layer, Conv2DTranspose):
        # Relay's conv2d_transpose as upstream lowers it: the dilated input padded by
        # kernel - 1 - pad on every side, plus output_padding at the bottom and right
        back = layer.kernel - 1 - layer.pad
        return ConvGeometry(layer.dilated_height, layer.dilated_width,
                            (back, back, back + layer.output_padding, back + layer.output_padding),
                            1, layer.kernel, layer.out_height, layer.out_width, 1, "transpose")
    return ConvGeometry(layer.height, layer.width, (layer.pad,) * 4, layer.stride, layer.kernel,
                        layer.out_height, layer.out_width, getattr(layer, "groups", 1), "conv")


@dataclasses.dataclass(frozen=True)
class Dense:
    """A fully-connected layer in VTA's packed layout: data (N/b, I/c, b, c), weight (O/c, I/c, c, c)."""

    batch: int
    in_features: int
    out_features: int
    epilogue: tuple = TUTORIAL_EPILOGUE
    count: int = 1
    name: str = ""

    def __post_init__(self):
        _check_dims(self, ("batch", "in_features", "out_features", "count"))
        object.__setattr__(self, "epilogue", check_epilogue(self.epilogue))

    @property
    def macs(self) -> int:
        return self.batch * self.in_features * self.out_features

    def describe(self) -> str:
        return f"{self.in_features}->{self.out_features}, batch {self.batch}"


def check_packing(layer, env) -> None:
    """The layer's dimensions must be whole VTA tiles for this geometry."""
    if isinstance(layer, Elementwise):
        dims = (("batch", layer.batch, env.BATCH), ("channels", layer.channels, env.BLOCK_OUT))
    elif isinstance(layer, GroupConv2D):
        # each group's channels must be whole blocks: the kernel holds C/groups/c input blocks
        dims = (("batch", layer.batch, env.BATCH),
                ("in_channels / groups", layer.in_channels // layer.groups, env.BLOCK_IN),
                ("out_channels / groups", layer.out_channels // layer.groups, env.BLOCK_OUT))
    elif isinstance(layer, CONV_LAYERS):
        dims = (("batch", layer.batch, env.BATCH), ("in_channels", layer.in_channels, env.BLOCK_IN),
                ("out_channels", layer.out_channels, env.BLOCK_OUT))
    else:
        dims = (("batch", layer.batch, env.BATCH), ("in_features", layer.in_features, env.BLOCK_IN),
                ("out_features", layer.out_features, env.BLOCK_OUT))
    for name, value, block in dims:
        if value % block:
            raise CompileError(f"{type(layer).__name__}.{name} = {value} is not a multiple of {block}, "
                               f"the tile size of {env.MODEL}")


ELEMENTWISE_OPS = ("add", "multiply")


@dataclasses.dataclass(frozen=True)
class Elementwise:
    """An ALU-only op of two packed int32 tensors (N/b, C/c, H, W, b, c), as upstream runs Relay's
    add/multiply on VTA (``schedule_alu_packed``), followed by the epilogue and the int8 store."""

    batch: int
    channels: int
    height: int
    width: int
    op: str = "add"
    epilogue: tuple = (("shr", 0),)
    count: int = 1
    name: str = ""

    def __post_init__(self):
        _check_dims(self, ("batch", "channels", "height", "width", "count"))
        if self.op not in ELEMENTWISE_OPS:
            raise CompileError(f"Elementwise.op = {self.op!r}: one of {', '.join(ELEMENTWISE_OPS)}")
        object.__setattr__(self, "epilogue", check_epilogue(self.epilogue))
        if any(step[0] == "bias" for step in self.epilogue):
            raise CompileError("Elementwise: a bias step is an add of its own; use op='add'")

    @property
    def macs(self) -> int:
        return 0

    def describe(self) -> str:
        return f"{self.op} of {self.channels}x{self.height}x{self.width}, batch {self.batch}"


# A layer's kind, as a study's op and a network description name it.
LAYER_KINDS = {"conv2d": Conv2D, "group_conv2d": GroupConv2D, "conv2d_transpose": Conv2DTranspose, "dense": Dense,
               "elementwise": Elementwise}


def layer_kind(layer) -> str:
    return next(kind for kind, cls in LAYER_KINDS.items() if type(layer) is cls)

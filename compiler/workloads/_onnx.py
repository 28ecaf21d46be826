"""Quantized ONNX models as VTA layers: what VTA can offload, with the epilogue that reproduces the
model's integer arithmetic, and what stays on the CPU (with the reason).

Accepted encodings: QDQ (``DequantizeLinear`` → Conv / ConvTranspose / Gemm / MatMul / Add
[→ Relu / Clip] → ``QuantizeLinear``), the QOperator form (``QLinearConv``, ``QLinearMatMul``,
``com.microsoft`` ``QLinearAdd``) and the integer form (``ConvInteger`` / ``MatMulInteger`` [→ Add
int32 bias] → Cast → Mul by the scale [→ Relu / Clip] → ``QuantizeLinear``). VTA computes with
int8 data and weights, an int32 accumulator and a power-of-two requantization, so every scale
must be a per-tensor power of two and every zero point 0; anything else is refused naming the
tensor.

Requantizing by 2^-n (n > 0) is, in ONNX, ``round half to even`` (QuantizeLinear); VTA's epilogue
can only add a constant and shift (``add 2^(n-1)``, ``shr n``: round half up), and no chain of
adds, shifts, min and max can break ties by parity. The two differ exactly on ties, so such a
layer is refused unless the caller accepts VTA's rounding (``rounding="half_up"``).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from ..ir import CompileError
from ._layers import LAYER_KINDS, epilogue_text, layer_kind

ROUNDINGS = ("exact", "half_up")
INT8 = (-128, 127)
# Larger models are refused before parsing (protobuf caps a message at 2 GiB anyway).
MAX_MODEL_BYTES = 1 << 31


class OnnxImportError(CompileError):
    """A model that cannot be imported; the message names the file, node or tensor."""


@dataclasses.dataclass(frozen=True)
class ImportedOp:
    """One offloaded op instance: its layer (count 1, named by the distinct layer it belongs to),
    the activation tensors it reads, the tensor it writes and its constants: ``weight`` as a
    correlation kernel (O, C/groups, KH, KW) or a dense matrix (O, I), ``bias`` (O,) int32 with
    any rounding constant folded in."""

    tag: str
    layer: object
    inputs: tuple
    output: str
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class ImportedNetwork:
    source: str
    ops: tuple            # ImportedOp in execution order
    layers: tuple         # distinct layers with .count, in order of first appearance
    cpu: tuple            # (node, why) of what stays on the CPU
    inputs: dict          # quantized input tensor -> (shape NCHW or NC, exponent)
    exponents: dict       # every quantized tensor -> exponent of its scale

    def workload_toml(self) -> str:
        """A study's ``[[workloads]]`` tables for the offloaded layers (paste or append them into a
        study file), with what stays on the CPU as comments."""
        from dataclasses import fields

        lines = [f"# VTA workloads of {self.source} (vta-dse import); {len(self.ops)} offloaded op(s), "
                 f"{len(self.layers)} distinct layer(s)"]
        lines += [f"# on the CPU: {node}: {why}" for node, why in self.cpu] or ["# nothing stays on the CPU"]
        for layer in self.layers:
            lines += ["", "[[workloads]]", f'op = "{layer_kind(layer)}"', f"name = {_toml_str(layer.name)}",
                      f"count = {layer.count}"]
            for f in fields(layer):
                if f.name in ("count", "name", "epilogue"):
                    continue
                value = getattr(layer, f.name)
                key = "alu" if f.name == "op" else f.name     # a workload's own op key names the workload op
                lines.append(f"{key} = {_toml_str(value) if isinstance(value, str) else value}")
            lines.append(f"epilogue = {_toml_str(epilogue_text(layer.epilogue))}")
        return "\n".join(lines) + "\n"


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def import_onnx(model, rounding: str = "exact", block: int = 16) -> ImportedNetwork:
    """Read a quantized ONNX model (a path, bytes or an ``onnx.ModelProto``) into the layers VTA
    offloads. ``block``: channels must be whole tiles of this size to be offloaded (VTA's
    BLOCK_IN/BLOCK_OUT; upstream's 16), else the op stays on the CPU. Raises OnnxImportError."""
    if rounding not in ROUNDINGS:
        raise OnnxImportError(f"rounding = {rounding!r}: one of {', '.join(ROUNDINGS)}")
    proto, source = _load(model)
    return _Importer(proto, source, rounding, block).run()


def _load(model):
    try:
        import onnx
    except ImportError as exc:   # a declared dependency; a broken install is still named
        raise OnnxImportError(f"the onnx package is not available ({exc}); pip install onnx") from None
    source = "<model>"
    if isinstance(model, (str, Path)):
        source = str(model)
        try:
            path = Path(model)
            size = path.stat().st_size
            if size > MAX_MODEL_BYTES:
                raise OnnxImportError(f"{source}: {size} bytes is larger than an ONNX file can be")
            model = path.read_bytes()
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise OnnxImportError(f"cannot read ONNX model {source!r}: {reason}") from None
    if isinstance(model, (bytes, bytearray)):
        try:
            proto = onnx.load_from_string(bytes(model))
        except Exception as exc:   # protobuf's DecodeError and friends: not a model
            raise OnnxImportError(f"{source}: not an ONNX model ({type(exc).__name__}: {str(exc)[:120]})") from None
    elif isinstance(model, onnx.ModelProto):
        proto = model
    else:
        raise OnnxImportError(f"expected an ONNX file path, bytes or onnx.ModelProto, got {type(model).__name__}")
    try:
        onnx.checker.check_model(proto)
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise OnnxImportError(f"{source}: not a valid ONNX model: {first}") from None
    if not proto.graph.node:
        raise OnnxImportError(f"{source}: the model's graph has no nodes")
    return proto, source


def _exponent(value, what: str) -> int:
    """The exponent e of a per-tensor power-of-two scale 2^e."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 1:
        raise OnnxImportError(f"{what}: a per-channel scale ({arr.size} values); VTA needs one power-of-two "
                              f"scale per tensor")
    scale = float(arr.reshape(()))
    mantissa, exp = math.frexp(scale) if math.isfinite(scale) else (0.0, 0)
    if not scale > 0 or mantissa != 0.5:
        raise OnnxImportError(f"{what}: scale {scale!r} is not a power of two; VTA requantizes by shifts only")
    return exp - 1


@dataclasses.dataclass
class _Pending:
    """A float result of an offloadable op awaiting its QuantizeLinear."""

    kind: str                 # a LAYER_KINDS key
    node: str
    inputs: tuple
    dims: dict
    exponent: int | None      # of the accumulator (None: integer form before its scale Mul)
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    bias_exponent: int | None = None
    relu: bool = False
    low: float = -math.inf    # Clip bounds in the float domain
    high: float = math.inf
    cast: bool = False        # integer form: cast to float seen


class _Importer:
    def __init__(self, proto, source, rounding, block):
        self.proto, self.source, self.rounding, self.block = proto, source, rounding, block
        self.graph = proto.graph
        self.const = {t.name: _tensor(t, source) for t in self.graph.initializer}
        self.shapes = {}
        for info in [*self.graph.input, *self.graph.value_info, *self.graph.output]:
            dims = info.type.tensor_type.shape.dim
            if info.type.tensor_type.HasField("shape"):
                self.shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        self.quant: dict = {}       # int8 activation tensor -> exponent
        self.deq: dict = {}         # float tensor -> quantized tensor it dequantizes
        self.wconst: dict = {}      # float tensor -> (integer constant, exponent)
        self.pending: dict = {}
        self.ops: list = []
        self.cpu: list = []
        self.inputs: dict = {}

    # ---- helpers ---------------------------------------------------------------------------
    def _where(self, node) -> str:
        return f"{self.source}: node {node.name or node.op_type!r} ({node.op_type})"

    def _constant(self, name, node, what):
        if name not in self.const:
            raise OnnxImportError(f"{self._where(node)}: {what} {name!r} must be a constant (an initializer)")
        return self.const[name]

    def _scale(self, name, node) -> int:
        return _exponent(self._constant(name, node, "scale"), f"{self._where(node)}: scale tensor {name!r}")

    def _zero_point(self, inputs, index, node, data_type=None):
        if len(inputs) > index and inputs[index]:
            zp = self._constant(inputs[index], node, "zero point")
            if np.any(zp != 0):
                raise OnnxImportError(f"{self._where(node)}: zero point tensor {inputs[index]!r} is {zp.ravel()[:4]}; "
                                      f"VTA's arithmetic is symmetric (zero points must be 0)")
            if zp.dtype != np.int8 and data_type is None:
                raise OnnxImportError(f"{self._where(node)}: zero point tensor {inputs[index]!r} is {zp.dtype}; "
                                      f"VTA's data and weights are int8")

    def _shape(self, name):
        shape = self.shapes.get(name)
        if name in self.const:
            shape = self.const[name].shape
        if shape is None or any(d is None or d <= 0 for d in shape):
            return None
        return tuple(shape)

    def _attrs(self, node) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def _on_cpu(self, node, why):
        self.cpu.append((f"{node.op_type} {node.name or ''}".strip(), why))
        for out in node.output:
            self.pending.pop(out, None)

    # ---- the walk --------------------------------------------------------------------------
    def run(self) -> ImportedNetwork:
        for node in self.graph.node:
            handler = getattr(self, f"_op_{node.op_type}", None)
            if node.op_type == "Constant":
                attrs = self._attrs(node)
                if "value" in attrs:
                    self.const[node.output[0]] = _tensor(attrs["value"], self._where(node))
                    continue
            if handler is None:
                args = [i for i in node.input if i]
                if any(i in self.pending for i in args):
                    self._flush_inputs(node)
                self._on_cpu(node, f"{node.op_type} has no VTA lowering")
                continue
            handler(node)
        for name, pending in self.pending.items():
            self.cpu.append((f"{pending.node}", "its result is not requantized to int8 (no QuantizeLinear)"))
        return self._network()

    def _flush_inputs(self, node):
        for name in node.input:
            if name in self.pending:
                p = self.pending.pop(name)
                self.cpu.append((p.node, f"its float result feeds {node.op_type} before any QuantizeLinear"))

    def _op_QuantizeLinear(self, node):
        x, out = node.input[0], node.output[0]
        exponent = self._scale(node.input[1], node)
        self._zero_point(node.input, 2, node)
        output_type = self._elem_type(out)
        if output_type not in (None, "int8"):
            raise OnnxImportError(f"{self._where(node)}: output tensor {out!r} is {output_type}; VTA's data is int8")
        if x in self.pending:
            self._finish(self.pending.pop(x), out, exponent, node)
        else:
            self.cpu.append((f"QuantizeLinear {node.name or ''}".strip(), f"quantizes {x!r} (a float tensor "
                             f"computed on the CPU) to int8"))
            if x in {i.name for i in self.graph.input}:
                self.inputs[out] = (self._shape(x), exponent)
        self.quant[out] = exponent

    def _elem_type(self, name):
        from onnx import helper

        for info in [*self.graph.value_info, *self.graph.output, *self.graph.input]:
            if info.name == name:
                code = info.type.tensor_type.elem_type
                try:
                    return helper.tensor_dtype_to_np_dtype(code).name
                except (KeyError, ValueError, TypeError):
                    return f"element type {code}"
        return None

    def _op_DequantizeLinear(self, node):
        x, out = node.input[0], node.output[0]
        exponent = self._scale(node.input[1], node)
        if x in self.const:
            self._zero_point(node.input, 2, node, data_type=self.const[x].dtype)
            self.wconst[out] = (self.const[x], exponent)
        elif x in self.quant:
            self._zero_point(node.input, 2, node)
            self.deq[out] = x
        else:
            self._on_cpu(node, f"dequantizes {x!r}, which is not an int8 tensor VTA computed")

    def _activation(self, name, node):
        """The quantized tensor a float operand dequantizes, or None."""
        return self.deq.get(name)

    def _weight(self, name, node, what="weight"):
        if name not in self.wconst:
            return None
        values, exponent = self.wconst[name]
        if values.dtype != np.int8:
            raise OnnxImportError(f"{self._where(node)}: {what} tensor {name!r} is {values.dtype}; "
                                  f"VTA's weights are int8")
        return values, exponent

    def _bias(self, name, node):
        if name not in self.wconst:
            raise OnnxImportError(f"{self._where(node)}: bias {name!r} must be an int32 constant dequantized by "
                                  f"DequantizeLinear")
        values, exponent = self.wconst[name]
        if values.dtype != np.int32:
            raise OnnxImportError(f"{self._where(node)}: bias tensor {name!r} is {values.dtype}; VTA's bias is int32")
        return values.astype(np.int64), exponent

    # ---- offloadable float ops (QDQ) ---------------------------------------------------------
    def _conv_dims(self, node, x_shape, w_shape, transpose=False):
        """(kind, dims) of a Conv/ConvTranspose, or (None, why) when VTA cannot run it."""
        attrs = self._attrs(node)
        k = w_shape[2:]
        strides = list(attrs.get("strides", [1, 1]))
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        group = int(attrs.get("group", 1))
        if len(x_shape) != 4:
            return None, f"a {len(x_shape)}-D convolution (VTA runs 2-D ones)"
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            return None, "auto_pad (explicit pads only)"
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            return None, "a dilated kernel"
        if k[0] != k[1] or strides[0] != strides[1] or len(set(pads)) != 1:
            return None, (f"kernel {list(k)}, strides {strides}, pads {pads}: VTA's templates take square, "
                          f"symmetric ones")
        n, c, h, w = x_shape
        out_channels = w_shape[1] * group if transpose else w_shape[0]
        dims = {"batch": n, "height": h, "width": w, "in_channels": c, "out_channels": out_channels,
                "kernel": int(k[0]), "stride": int(strides[0]), "pad": int(pads[0])}
        per_group_in, per_group_out = c // group, out_channels // group
        if per_group_in % self.block or per_group_out % self.block:
            what = ("depthwise" if per_group_in == 1
                    else f"{per_group_in} input / {per_group_out} output channels per group")
            return None, (f"{what}: not whole {self.block}-channel VTA tiles (upstream keeps such a conv on the CPU)"
                          if group > 1 else f"{c} input / {out_channels} output channels: not whole "
                          f"{self.block}-channel VTA tiles (upstream keeps such a conv on the CPU)")
        if transpose:
            if group != 1:
                return None, "a grouped transposed convolution"
            output_padding = list(attrs.get("output_padding", [0, 0]))
            if output_padding[0] != output_padding[1]:
                return None, f"output_padding {output_padding}: VTA's template takes a symmetric one"
            return "conv2d_transpose", {**dims, "output_padding": int(output_padding[0])}
        if group > 1:
            return "group_conv2d", {**dims, "groups": group}
        return "conv2d", dims

    def _op_Conv(self, node, transpose=False):
        x = self._activation(node.input[0], node)
        weight = self._weight(node.input[1], node)
        x_shape = self._shape(node.input[0])
        if x is None or weight is None or x_shape is None:
            return self._on_cpu(node, "its input is not a dequantized int8 activation with a static shape "
                                      "and an int8 constant weight")
        w, e_w = weight
        kind, dims = self._conv_dims(node, x_shape, w.shape, transpose)
        if kind is None:
            return self._on_cpu(node, dims)
        kernel = w.astype(np.int64)
        if transpose:   # (C_in, C_out, KH, KW) -> the correlation kernel (C_out, C_in, KH, KW), flipped
            kernel = kernel.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
        pending = _Pending(kind, node.name or node.output[0], (x,), dims, self.quant[x] + e_w, weight=kernel)
        if len(node.input) > 2 and node.input[2]:
            pending.bias, pending.bias_exponent = self._bias(node.input[2], node)
        self.pending[node.output[0]] = pending

    def _op_ConvTranspose(self, node):
        self._op_Conv(node, transpose=True)

    def _dense(self, node, a_name, b_name, trans_b=False):
        x = self._activation(a_name, node)
        weight = self._weight(b_name, node)
        shape = self._shape(a_name)
        if x is None or weight is None or shape is None or len(shape) != 2 or weight[0].ndim != 2:
            return None
        w, e_w = weight
        matrix = (w if trans_b else w.T).astype(np.int64)      # (out, in)
        n, k = shape
        if k % self.block or matrix.shape[0] % self.block:
            self._on_cpu(node, f"{k} input / {matrix.shape[0]} output features: not whole {self.block}-wide VTA tiles")
            return False
        dims = {"batch": n, "in_features": k, "out_features": matrix.shape[0]}
        return _Pending("dense", node.name or node.output[0], (x,), dims, self.quant[x] + e_w, weight=matrix)

    def _op_Gemm(self, node):
        attrs = self._attrs(node)
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            return self._on_cpu(node, "Gemm with transA, alpha or beta (VTA's dense is A x B^T + bias)")
        pending = self._dense(node, node.input[0], node.input[1], bool(attrs.get("transB", 0)))
        if pending is None:
            return self._on_cpu(node, "its inputs are not a dequantized 2-D int8 activation and an int8 constant")
        if pending is False:
            return
        if len(node.input) > 2 and node.input[2]:
            pending.bias, pending.bias_exponent = self._bias(node.input[2], node)
        self.pending[node.output[0]] = pending

    def _op_MatMul(self, node):
        pending = self._dense(node, node.input[0], node.input[1])
        if pending is None:
            return self._on_cpu(node, "its inputs are not a dequantized 2-D int8 activation and an int8 constant")
        if pending is not False:
            self.pending[node.output[0]] = pending

    def _op_Add(self, node):
        if self._integer_bias(node):
            return
        a, b = node.input[0], node.input[1]
        into = self.pending.get(a)
        if into is not None and into.bias is None and b in self.wconst and into.kind != "elementwise":
            p = self.pending.pop(a)      # MatMul/Conv + Add(bias)
            p.bias, p.bias_exponent = self._bias(b, node)
            if p.bias.ndim != 1 and p.kind == "dense":
                p.bias = p.bias.reshape(-1)
            self.pending[node.output[0]] = p
            return
        qa, qb = self._activation(a, node), self._activation(b, node)
        sa, sb = self._shape(a), self._shape(b)
        if qa is None or qb is None or sa is None or sa != sb or len(sa) != 4:
            self._flush_inputs(node)
            return self._on_cpu(node, "not an add of two dequantized int8 activations of the same 4-D shape")
        if self.quant[qa] != self.quant[qb]:
            raise OnnxImportError(f"{self._where(node)}: operands {qa!r} and {qb!r} have scales 2^{self.quant[qa]} "
                                  f"and 2^{self.quant[qb]}; VTA's add needs one scale")
        n, c, h, w = sa
        if c % self.block:
            return self._on_cpu(node, f"{c} channels: not whole {self.block}-channel VTA tiles")
        dims = {"batch": n, "channels": c, "height": h, "width": w, "op": "add"}
        self.pending[node.output[0]] = _Pending("elementwise", node.name or node.output[0], (qa, qb), dims,
                                                self.quant[qa])

    def _op_Relu(self, node):
        x = node.input[0]
        if x not in self.pending:
            return self._on_cpu(node, "not after an offloaded op")
        p = self.pending.pop(x)
        p.relu = True     # its own step before the rounding, as Relay fuses it; the clip keeps int8's range
        self.pending[node.output[0]] = p

    def _op_Clip(self, node):
        x = node.input[0]
        if x not in self.pending:
            return self._on_cpu(node, "not after an offloaded op")
        attrs = self._attrs(node)
        low, high = attrs.get("min", -math.inf), attrs.get("max", math.inf)
        for index, name in ((1, "min"), (2, "max")):
            if len(node.input) > index and node.input[index]:
                value = float(np.asarray(self._constant(node.input[index], node, f"Clip {name}")).reshape(()))
                low, high = (value, high) if name == "min" else (low, value)
        p = self.pending.pop(x)
        p.low, p.high = max(p.low, low), min(p.high, high)
        self.pending[node.output[0]] = p

    # ---- integer forms ---------------------------------------------------------------------
    def _raw_weight(self, name, node):
        """An integer form's weight: an int8 initializer (with exponent 0: the scale comes later)."""
        values = self.const.get(name)
        if values is None:
            return None
        if values.dtype != np.int8:
            raise OnnxImportError(f"{self._where(node)}: weight tensor {name!r} is {values.dtype}; "
                                  f"VTA's weights are int8")
        return values, 0

    def _op_ConvInteger(self, node):
        x = node.input[0]
        weight = self._raw_weight(node.input[1], node)
        shape = self._shape(x)
        if x not in self.quant or weight is None or shape is None:
            return self._on_cpu(node, "its inputs are not an int8 activation and an int8 constant weight")
        self._zero_point(node.input, 2, node)
        self._zero_point(node.input, 3, node)
        kind, dims = self._conv_dims(node, shape, weight[0].shape)
        if kind is None:
            return self._on_cpu(node, dims)
        self.pending[node.output[0]] = _Pending(kind, node.name or node.output[0], (x,), dims, None,
                                                weight=weight[0].astype(np.int64))

    def _op_MatMulInteger(self, node):
        x = node.input[0]
        weight = self._raw_weight(node.input[1], node)
        shape = self._shape(x)
        if x not in self.quant or weight is None or shape is None or len(shape) != 2:
            return self._on_cpu(node, "its inputs are not a 2-D int8 activation and an int8 constant")
        self._zero_point(node.input, 2, node)
        self._zero_point(node.input, 3, node)
        matrix = weight[0].T.astype(np.int64)
        n, k = shape
        if k % self.block or matrix.shape[0] % self.block:
            return self._on_cpu(node, f"{k} input / {matrix.shape[0]} output features: not whole VTA tiles")
        self.pending[node.output[0]] = _Pending("dense", node.name or node.output[0], (x,),
                                                {"batch": n, "in_features": k, "out_features": matrix.shape[0]},
                                                None, weight=matrix)

    def _integer_step(self, node) -> _Pending | None:
        x = node.input[0]
        p = self.pending.get(x)
        return p if p is not None and p.exponent is None else None

    def _op_Cast(self, node):
        p = self._integer_step(node)
        if p is None:
            self._flush_inputs(node)
            return self._on_cpu(node, "not after an integer ConvInteger/MatMulInteger")
        self.pending.pop(node.input[0])
        p.cast = True
        self.pending[node.output[0]] = p

    def _op_Mul(self, node):
        p = self._integer_step(node)
        if p is None or not p.cast or node.input[1] not in self.const:
            self._flush_inputs(node)
            return self._on_cpu(node, "not the scale of an integer ConvInteger/MatMulInteger result")
        self.pending.pop(node.input[0])
        p.exponent = _exponent(self.const[node.input[1]], f"{self._where(node)}: scale tensor {node.input[1]!r}")
        if p.bias is not None:
            p.bias_exponent = p.exponent
        self.pending[node.output[0]] = p

    def _integer_bias(self, node) -> bool:
        p = self._integer_step(node)
        b = node.input[1]
        if p is None or p.cast or b not in self.const:
            return False
        values = self.const[b]
        if values.dtype != np.int32:
            raise OnnxImportError(f"{self._where(node)}: bias tensor {b!r} is {values.dtype}; VTA's bias is int32")
        self.pending.pop(node.input[0])
        p.bias = values.astype(np.int64).reshape(-1)
        self.pending[node.output[0]] = p
        return True

    # ---- QOperator forms ---------------------------------------------------------------------
    def _qlinear_inputs(self, node, pairs):
        """(activation or constant, exponent) for each (tensor, scale, zero point) index triple."""
        out = []
        for t, s, z in pairs:
            exponent = self._scale(node.input[s], node)
            self._zero_point(node.input, z, node)
            name = node.input[t] if t is not None else node.output[0]
            if t is not None and name in self.quant and self.quant[name] != exponent:
                raise OnnxImportError(f"{self._where(node)}: scale tensor {node.input[s]!r} says 2^{exponent} but "
                                      f"{name!r} was quantized with 2^{self.quant[name]}")
            out.append((name, exponent))
        return out

    def _op_QLinearConv(self, node):
        (x, e_x), (w_name, e_w), (_, e_y) = self._qlinear_inputs(node, ((0, 1, 2), (3, 4, 5), (None, 6, 7)))
        w = self._constant(w_name, node, "weight")
        shape = self._shape(x)
        if x not in self.quant or shape is None:
            return self._on_cpu(node, "its input is not an int8 activation with a static shape")
        kind, dims = self._conv_dims(node, shape, w.shape)
        if kind is None:
            return self._on_cpu(node, dims)
        p = _Pending(kind, node.name or node.output[0], (x,), dims, e_x + e_w, weight=w.astype(np.int64))
        if len(node.input) > 8 and node.input[8]:
            p.bias, p.bias_exponent = self._constant(node.input[8], node, "bias").astype(np.int64), e_x + e_w
        self._finish(p, node.output[0], e_y, node)
        self.quant[node.output[0]] = e_y

    def _op_QLinearMatMul(self, node):
        (a, e_a), (b_name, e_b), (_, e_y) = self._qlinear_inputs(node, ((0, 1, 2), (3, 4, 5), (None, 6, 7)))
        b = self._constant(b_name, node, "weight")
        shape = self._shape(a)
        if a not in self.quant or shape is None or len(shape) != 2 or b.ndim != 2:
            return self._on_cpu(node, "not a 2-D int8 activation times an int8 constant")
        matrix = b.T.astype(np.int64)
        if shape[1] % self.block or matrix.shape[0] % self.block:
            return self._on_cpu(node, "features are not whole VTA tiles")
        p = _Pending("dense", node.name or node.output[0], (a,),
                     {"batch": shape[0], "in_features": shape[1], "out_features": matrix.shape[0]}, e_a + e_b,
                     weight=matrix)
        self._finish(p, node.output[0], e_y, node)
        self.quant[node.output[0]] = e_y

    def _op_QLinearAdd(self, node):
        (a, e_a), (b, e_b), (_, e_y) = self._qlinear_inputs(node, ((0, 1, 2), (3, 4, 5), (None, 6, 7)))
        shape = self._shape(a)
        if a not in self.quant or b not in self.quant or shape is None or shape != self._shape(b) or len(shape) != 4:
            return self._on_cpu(node, "not an add of two int8 activations of the same 4-D shape")
        if e_a != e_b:
            raise OnnxImportError(f"{self._where(node)}: operands {a!r} and {b!r} have scales 2^{e_a} and 2^{e_b}; "
                                  f"VTA's add needs one scale")
        n, c, h, w = shape
        p = _Pending("elementwise", node.name or node.output[0], (a, b),
                     {"batch": n, "channels": c, "height": h, "width": w, "op": "add"}, e_a)
        self._finish(p, node.output[0], e_y, node)
        self.quant[node.output[0]] = e_y

    # ---- requantization: the epilogue ----------------------------------------------------
    def _finish(self, p: _Pending, out: str, e_y: int, node):
        where = f"{self._where(node)}: tensor {out!r}"
        if p.exponent is None:
            raise OnnxImportError(f"{where}: the integer result of {p.node!r} reaches QuantizeLinear without its "
                                  f"scale (Cast then Mul by a power of two)")
        shift = e_y - p.exponent
        if shift < 0:
            raise OnnxImportError(f"{where}: requantizing multiplies by 2^{-shift}; VTA's epilogue only shifts right")
        if shift > 16:
            raise OnnxImportError(f"{where}: a shift of {shift}; its rounding constant 2^{shift - 1} does not fit "
                                  f"the ALU's 16-bit immediate")
        if shift > 0 and self.rounding == "exact":
            raise OnnxImportError(f"{where}: requantizing by 2^-{shift} rounds half to even (QuantizeLinear); VTA "
                                  f"rounds half up (add {1 << (shift - 1)}, shr {shift}), which differs on ties; "
                                  f"accept VTA's rounding with rounding = 'half_up' "
                                  f"(vta-dse import --rounding half_up)")
        bias = None
        if p.bias is not None:
            if p.bias_exponent != p.exponent:
                raise OnnxImportError(f"{where}: the bias of {p.node!r} has scale 2^{p.bias_exponent}, the "
                                      f"accumulator 2^{p.exponent}; they must be equal")
            bias = p.bias.reshape(-1)
            if bias.size != p.weight.shape[0]:
                raise OnnxImportError(f"{where}: the bias of {p.node!r} has {bias.size} values for "
                                      f"{p.weight.shape[0]} output channels")
        steps = []
        if bias is not None:
            steps.append(("bias",))
        if p.relu:
            steps.append(("relu",))
        if shift:
            # Relay's realize folds the rounding constant into a bias that no relu follows.
            if bias is not None and not p.relu:
                bias = bias + (1 << (shift - 1))
            else:
                steps.append(("add", 1 << (shift - 1)))
            steps.append(("shr", shift))
        low = max(INT8[0], _round_half_even(p.low / 2.0 ** e_y)) if math.isfinite(p.low) else INT8[0]
        high = min(INT8[1], _round_half_even(p.high / 2.0 ** e_y)) if math.isfinite(p.high) else INT8[1]
        if low > high:
            raise OnnxImportError(f"{where}: Clip bounds leave no value ({low} > {high})")
        steps.append(("clip", low, high))
        try:
            layer = LAYER_KINDS[p.kind](**p.dims, epilogue=tuple(steps), name=p.node)
        except CompileError as exc:
            raise OnnxImportError(f"{where}: {exc}") from None
        if bias is not None and (bias.min() < -(1 << 31) or bias.max() >= 1 << 31):
            raise OnnxImportError(f"{where}: the bias of {p.node!r} overflows int32")
        packed_bias = None if bias is None else bias.astype(np.int32)
        self.ops.append(ImportedOp(p.node, layer, p.inputs, out, p.weight, packed_bias))

    def _network(self) -> ImportedNetwork:
        groups: dict = {}
        ops = []
        for op in self.ops:
            key = (type(op.layer), dataclasses.replace(op.layer, name=""))
            name = groups.setdefault(key, [_unique(op.tag, [n for n, _ in groups.values()]), 0])
            name[1] += 1
            ops.append(dataclasses.replace(op, layer=dataclasses.replace(op.layer, name=name[0])))
        layers = tuple(dataclasses.replace(layer, name=name, count=count)
                       for (_, layer), (name, count) in groups.items())
        exponents = dict(self.quant)
        return ImportedNetwork(self.source, tuple(ops), layers, tuple(self.cpu), dict(self.inputs), exponents)


def _tensor(proto, where: str) -> np.ndarray:
    """A constant's values; a tensor whose type or data the onnx package cannot read is named."""
    from onnx import numpy_helper

    try:
        return numpy_helper.to_array(proto)
    except Exception as exc:   # an unknown data type, data that does not fill its dims
        raise OnnxImportError(f"{where}: constant tensor {proto.name!r} cannot be read "
                              f"({type(exc).__name__}: {str(exc)[:80]})") from None


def _unique(name, taken) -> str:
    if isinstance(name, bytes):     # protobuf hands back a name that is not UTF-8 as bytes
        name = name.decode("utf-8", "replace")
    base = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)[:60] or "layer"
    candidate, index = base, 2
    while candidate in taken:
        candidate, index = f"{base}_{index}", index + 1
    return candidate


def _round_half_even(x: float) -> int:
    return int(np.rint(x))

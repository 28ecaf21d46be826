"""Small quantized ONNX models built with onnx.helper, a numpy reference of their ONNX semantics
(integer values carried exactly in float64), and a runner of an imported network on the simulator."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import simulator
from compiler import workloads

OPSET = 19


class QdqModel:
    """A QDQ model under construction: int8 tensors with power-of-two scales, float ops between
    DequantizeLinear and QuantizeLinear, as quantization tools write them."""

    def __init__(self, input_shape, exponent: int, seed: int = 0, name: str = "x"):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.exp = [], [], {}
        self.inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(input_shape))]
        self.count = 0
        self.first = self.quantize(name, exponent)

    def _name(self, stem):
        self.count += 1
        return f"{stem}{self.count}"

    def const(self, value, stem="c"):
        name = self._name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def quantize(self, x, exponent, zero_point=0):
        out = self._name("q")
        self.nodes.append(helper.make_node("QuantizeLinear", [x, self.const(np.float32(2.0 ** exponent), "s"),
                                                              self.const(np.int8(zero_point), "zp")], [out],
                                           name=self._name("quant")))
        self.exp[out] = exponent
        return out

    def dequantize(self, q, exponent=None, int32=False):
        out = self._name("dq")
        scale = np.float32(2.0 ** (self.exp[q] if exponent is None else exponent))
        zp = np.zeros((), dtype=np.int32 if int32 else np.int8)
        self.nodes.append(helper.make_node("DequantizeLinear", [q, self.const(scale, "s"), self.const(zp, "zp")],
                                           [out], name=self._name("dequant")))
        return out

    def _finish(self, y, e_y, relu, clip):
        if relu:
            out = self._name("relu")
            self.nodes.append(helper.make_node("Relu", [y], [out], name=out))
            y = out
        if clip is not None:
            out = self._name("clip")
            bounds = [self.const(np.float32(clip[0])), self.const(np.float32(clip[1]))]
            self.nodes.append(helper.make_node("Clip", [y, *bounds], [out], name=out))
            y = out
        return self.quantize(y, e_y)

    def conv(self, x, out_channels, kernel, e_w, e_y, stride=1, pad=0, group=1, bias=True, relu=False, clip=None,
             transpose=False, output_padding=0, weight_range=4, name=None):
        in_channels = self.shape(x)[1]
        shape = ((in_channels, out_channels // group, kernel, kernel) if transpose
                 else (out_channels, in_channels // group, kernel, kernel))
        w = self.rng.integers(-weight_range, weight_range + 1, size=shape).astype(np.int8)
        args = [self.dequantize(x), self.dequantize(self.const(w, "w"), e_w)]
        if bias:
            b = self.rng.integers(-2000, 2000, size=out_channels).astype(np.int32)
            args.append(self.dequantize(self.const(b, "b"), self.exp[x] + e_w, int32=True))
        attrs = dict(kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4, group=group)
        if transpose:
            attrs["output_padding"] = [output_padding] * 2
        y = name or self._name("conv")
        self.nodes.append(helper.make_node("ConvTranspose" if transpose else "Conv", args, [y], name=y, **attrs))
        return self._finish(y, e_y, relu, clip)

    def dense(self, x, out_features, e_w, e_y, bias=True, relu=False, clip=None, gemm=True, name=None):
        in_features = self.shape(x)[1]
        w = self.rng.integers(-4, 5, size=(in_features, out_features)).astype(np.int8)
        y = name or self._name("fc")
        args = [self.dequantize(x), self.dequantize(self.const(w, "w"), e_w)]
        b = self.rng.integers(-2000, 2000, size=out_features).astype(np.int32) if bias else None
        if gemm:
            if bias:
                args.append(self.dequantize(self.const(b, "b"), self.exp[x] + e_w, int32=True))
            self.nodes.append(helper.make_node("Gemm", args, [y], name=y))
        else:
            mm = y + "_mm" if bias else y
            self.nodes.append(helper.make_node("MatMul", args, [mm], name=mm))
            if bias:
                b_dq = self.dequantize(self.const(b, "b"), self.exp[x] + e_w, int32=True)
                self.nodes.append(helper.make_node("Add", [mm, b_dq], [y], name=y))
        return self._finish(y, e_y, relu, clip)

    def add(self, a, b, e_y, relu=False, clip=None, name=None):
        y = name or self._name("add")
        self.nodes.append(helper.make_node("Add", [self.dequantize(a), self.dequantize(b)], [y], name=y))
        return self._finish(y, e_y, relu, clip)

    def cpu(self, op_type, x, **attrs):
        """A float op on the CPU between a DequantizeLinear and a QuantizeLinear."""
        y = self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, [self.dequantize(x)], [y], name=y, **attrs))
        return self.quantize(y, self.exp[x])

    def shape(self, name):
        model = onnx.shape_inference.infer_shapes(self.model(name, check=False))
        for info in [*model.graph.value_info, *model.graph.output]:
            if info.name == name:
                return [d.dim_value for d in info.type.tensor_type.shape.dim]
        raise KeyError(name)

    def model(self, out, check=True):
        if check:
            shape = self.shape(out)
            y = self.dequantize(out)
            outputs = [helper.make_tensor_value_info(y, TensorProto.FLOAT, shape)]
        else:
            outputs = [helper.make_empty_tensor_value_info(out)]
        graph = helper.make_graph(list(self.nodes), "qdq", list(self.inputs), outputs, list(self.inits))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        if check:
            onnx.checker.check_model(model)
        return model


# ---- numpy reference of the ONNX semantics ---------------------------------------------------

def _round(x, rounding):
    return np.rint(x) if rounding == "half_even" else np.floor(x + 0.5)


def _conv(x, w, b, stride, pad, group):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    og = o // group
    for g in range(group):
        for dy in range(kh):
            for dx in range(kw):
                rows, cols = slice(dy, dy + stride * (oh - 1) + 1, stride), slice(dx, dx + stride * (ow - 1) + 1, stride)
                patch = x[:, g * cg:(g + 1) * cg, rows, cols]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, w[g * og:(g + 1) * og, :, dy, dx])
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def _conv_transpose(x, w, b, stride, pad, output_padding):
    """ONNX ConvTranspose by its definition: every input pixel scatters its kernel."""
    n, c, h, wd = x.shape
    _, o, kh, kw = w.shape
    full = np.zeros((n, o, (h - 1) * stride + kh + output_padding, (wd - 1) * stride + kw + output_padding))
    for i in range(h):
        for j in range(wd):
            scattered = np.einsum("nc,cokl->nokl", x[:, :, i, j], w)
            full[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw] += scattered
    oh, ow = (h - 1) * stride - 2 * pad + kh + output_padding, (wd - 1) * stride - 2 * pad + kw + output_padding
    out = full[:, :, pad:pad + oh, pad:pad + ow]
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def reference(model, feeds: dict, rounding="half_even") -> dict:
    """Every tensor of ``model`` evaluated with ONNX's semantics (QuantizeLinear rounds half to even
    and saturates; ``rounding="half_up"``: as VTA rounds)."""
    values = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    values.update({k: np.asarray(v, dtype=np.float64) for k, v in feeds.items()})

    def attrs(node):
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def quantize(x, scale):
        return np.clip(_round(x / scale, rounding), -128, 127)

    for node in model.graph.node:
        a = attrs(node)
        ins = [values.get(i) if i else None for i in node.input]
        op = node.op_type
        if op == "QuantizeLinear":
            out = quantize(ins[0], ins[1])
        elif op == "DequantizeLinear":
            out = ins[0] * ins[1]
        elif op in ("Conv", "ConvInteger"):
            out = _conv(ins[0], ins[1], ins[2] if op == "Conv" and len(ins) > 2 else None, a.get("strides", [1])[0],
                        a.get("pads", [0])[0], a.get("group", 1))
        elif op == "ConvTranspose":
            out = _conv_transpose(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a.get("strides", [1])[0],
                                  a.get("pads", [0])[0], a.get("output_padding", [0])[0])
        elif op == "Gemm":
            out = ins[0] @ (ins[1].T if a.get("transB") else ins[1]) + (ins[2] if len(ins) > 2 else 0)
        elif op in ("MatMul", "MatMulInteger"):
            out = ins[0] @ ins[1]
        elif op == "Add":
            out = ins[0] + ins[1]
        elif op == "Mul":
            out = ins[0] * ins[1]
        elif op == "Cast":
            out = ins[0]
        elif op == "Relu":
            out = np.maximum(ins[0], 0)
        elif op == "Clip":
            out = np.clip(ins[0], ins[1], ins[2])
        elif op == "MaxPool":
            k, s = a["kernel_shape"][0], a["strides"][0]
            x = ins[0]
            oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
            out = np.max([x[:, :, dy:dy + s * (oh - 1) + 1:s, dx:dx + s * (ow - 1) + 1:s]
                          for dy in range(k) for dx in range(k)], axis=0)
        elif op == "QLinearConv":
            acc = _conv(ins[0], ins[3], ins[8] if len(ins) > 8 else None, a.get("strides", [1])[0],
                        a.get("pads", [0])[0], a.get("group", 1))
            out = quantize(acc * ins[1] * ins[4], ins[6])
        elif op == "QLinearMatMul":
            out = quantize(ins[0] @ ins[3] * ins[1] * ins[4], ins[6])
        elif op == "QLinearAdd":
            out = quantize(ins[0] * ins[1] + ins[3] * ins[4], ins[6])
        else:
            raise NotImplementedError(op)
        values[node.output[0]] = out
    return values


# ---- the imported network on the simulator ----------------------------------------------------

def run_on_vta(net, feeds: dict, env, knobs=None) -> dict:
    """Every offloaded op of ``net`` built (fallback knobs unless ``knobs[layer name]``) and run on the
    simulator in execution order; ``feeds``: the int8 input tensors (NCHW) by name."""
    values = {k: np.asarray(v) for k, v in feeds.items()}
    for op in net.ops:
        layer = op.layer
        chosen = (knobs or {}).get(layer.name)
        data = values[op.inputs[0]]
        rhs = values[op.inputs[1]] if len(op.inputs) > 1 else None
        args = workloads.pack_inputs(layer, env, data, op.weight, op.bias, rhs=rhs, knobs=chosen)
        out = workloads.empty_output(layer, env)
        simulator.run(workloads.build(layer, env=env, knobs=chosen), *args, out)
        values[op.output] = workloads.unpack_output(layer, env, out)
    return values

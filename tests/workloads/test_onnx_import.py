"""ONNX import (issue #20): quantized models built with onnx.helper, imported onto our layers, run on
the simulator and compared bit-exactly with a numpy reference of the model's ONNX semantics."""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnx.reference
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import hwconfigs
from compiler import workloads
from tests.workloads.onnx_models import OPSET, QdqModel, reference, run_on_vta

ENV = hwconfigs.get_env()


def _feeds(model_builder, shape, seed=0):
    return {"x": np.random.default_rng(seed).normal(0, 3, size=shape).astype(np.float32)}


def _check(model, builder, rounding, shape, seed=0):
    """Import, run on VTA from the quantized input, compare every offloaded op's output."""
    net = workloads.import_onnx(model, rounding=rounding)
    feeds = _feeds(builder, shape, seed)
    ref = reference(model, feeds, rounding="half_even" if rounding == "exact" else "half_up")
    got = run_on_vta(net, {builder.first: ref[builder.first].astype(np.int8)}, ENV)
    assert net.ops
    for op in net.ops:
        np.testing.assert_array_equal(got[op.output], ref[op.output], err_msg=op.tag)
    return net, ref


def test_the_reference_is_onnx_semantics():
    """Our numpy reference equals onnx's own reference evaluator on a QDQ model (half to even)."""
    m = QdqModel((1, 16, 6, 6), -3, seed=3)
    y = m.conv(m.first, 32, 3, -4, -5, pad=1, relu=True)
    y = m.conv(y, 32, 3, -4, -6, stride=2, pad=1, group=2)
    model = m.model(y)
    feeds = _feeds(m, (1, 16, 6, 6))
    theirs = onnx.reference.ReferenceEvaluator(model).run(None, feeds)[0]
    np.testing.assert_array_equal(theirs, reference(model, feeds)[model.graph.output[0].name])


def test_qdq_convs_and_residual_add_bit_exact_with_vta_rounding():
    m = QdqModel((1, 16, 8, 8), -4, seed=1)
    a = m.conv(m.first, 32, 3, -5, -6, pad=1, relu=True)
    b = m.conv(a, 32, 1, -5, -6, stride=2)
    c = m.conv(b, 32, 3, -5, -6, pad=1, clip=(-2.0, 1.5))
    y = m.add(b, c, -6, relu=True)
    net, _ = _check(m.model(y), m, "half_up", (1, 16, 8, 8))
    kinds = [type(op.layer).__name__ for op in net.ops]
    assert kinds == ["Conv2D", "Conv2D", "Conv2D", "Elementwise"]
    first, _, clipped, add = (op.layer.epilogue for op in net.ops)
    assert first == (("bias",), ("relu",), ("add", 4), ("shr", 3), ("clip", -128, 127))
    # Clip(-2, 1.5) at scale 2^-6 is [-128, 96]; the rounding constant folded into the bias
    assert clipped == (("bias",), ("shr", 5), ("clip", -128, 96))
    assert add == (("relu",), ("clip", -128, 127))
    assert [node for node, _ in net.cpu] == ["QuantizeLinear " + next(n.name for n in m.model(y).graph.node)]


def test_exact_rounding_imports_shift_free_requantization_and_refuses_ties():
    """With scales whose requantization needs no shift the model's arithmetic is VTA's exactly; a
    shift rounds half to even in ONNX and half up on VTA, so 'exact' refuses it naming the tensor."""
    m = QdqModel((1, 16, 6, 6), -2, seed=5)
    y = m.conv(m.first, 16, 3, -1, -3, pad=1, weight_range=1)
    _check(m.model(y), m, "exact", (1, 16, 6, 6))
    m = QdqModel((1, 16, 6, 6), -2, seed=5)
    y = m.conv(m.first, 16, 3, -1, -2, pad=1)
    with pytest.raises(workloads.OnnxImportError, match=rf"tensor '{y}'.*half to even.*half up"):
        workloads.import_onnx(m.model(y))


def test_dense_as_gemm_and_as_matmul_plus_bias():
    for gemm in (True, False):
        m = QdqModel((1, 64), -3, seed=2)
        y = m.dense(m.first, 32, -4, -5, gemm=gemm, relu=True)
        net, _ = _check(m.model(y), m, "half_up", (1, 64))
        assert [type(op.layer).__name__ for op in net.ops] == ["Dense"]
        assert net.ops[0].layer.epilogue[0] == ("bias",)


def test_grouped_and_transposed_convs_bit_exact():
    m = QdqModel((1, 32, 6, 6), -3, seed=4)
    g = m.conv(m.first, 32, 3, -4, -5, pad=1, group=2, relu=True)
    t = m.conv(g, 16, 4, -4, -5, stride=2, pad=1, transpose=True, relu=True)
    net, _ = _check(m.model(t), m, "half_up", (1, 32, 6, 6))
    assert [type(op.layer).__name__ for op in net.ops] == ["GroupConv2D", "Conv2DTranspose"]
    assert net.ops[0].layer.groups == 2 and net.ops[1].layer.out_height == 12


def test_what_stays_on_the_cpu_is_listed_with_why():
    m = QdqModel((1, 3, 8, 8), -3, seed=6)
    stem = m.conv(m.first, 16, 3, -4, -5, pad=1, relu=True, name="stem")
    pooled = m.cpu("MaxPool", stem, kernel_shape=[2, 2], strides=[2, 2])
    dw = m.conv(pooled, 16, 3, -4, -5, pad=1, group=16, name="depthwise")
    y = m.conv(dw, 32, 1, -4, -5, name="pointwise")
    net = workloads.import_onnx(m.model(y), rounding="half_up")
    why = dict(net.cpu)
    assert [op.tag for op in net.ops] == ["pointwise"]
    assert "3 input / 16 output channels" in why["Conv stem"]
    assert "MaxPool has no VTA lowering" in why[next(k for k in why if k.startswith("MaxPool"))]
    assert "depthwise" in why["Conv depthwise"]


def _qoperator_model(shift_free=False):
    """QLinearConv -> QLinearConv -> QLinearAdd (com.microsoft), and ConvInteger's integer form."""
    rng = np.random.default_rng(7)
    inits = []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    s = {e: const(f"s{e}".replace("-", "m"), np.float32(2.0 ** e)) for e in range(-8, 1)}
    zp = const("zp", np.int8(0))
    w1 = const("w1", rng.integers(-3, 4, size=(32, 16, 3, 3)).astype(np.int8))
    b1 = const("b1", rng.integers(-500, 500, size=32).astype(np.int32))
    w2 = const("w2", rng.integers(-3, 4, size=(32, 32, 1, 1)).astype(np.int8))
    w3 = const("w3", rng.integers(-3, 4, size=(32, 32, 1, 1)).astype(np.int8))
    nodes = [helper.make_node("QuantizeLinear", ["x", s[-3], zp], ["xq"], name="quant_x"),
             helper.make_node("QLinearConv", ["xq", s[-3], zp, w1, s[-4], zp, s[-5], zp, b1], ["c1"], name="qconv1",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("QLinearConv", ["c1", s[-5], zp, w2, s[-4], zp, s[-6], zp], ["c2"], name="qconv2",
                              kernel_shape=[1, 1]),
             helper.make_node("ConvInteger", ["c2", w3], ["i3"], name="iconv3", kernel_shape=[1, 1]),
             helper.make_node("Cast", ["i3"], ["f3"], name="cast3", to=TensorProto.FLOAT),
             helper.make_node("Mul", ["f3", const("scale3", np.float32(2.0 ** -10))], ["m3"], name="scale3"),
             helper.make_node("QuantizeLinear", ["m3", s[-6], zp], ["c3"], name="quant3"),
             helper.make_node("QLinearAdd", ["c2", s[-6], zp, "c3", s[-6], zp, s[-6], zp], ["y"], name="qadd",
                              domain="com.microsoft")]
    graph = helper.make_graph(nodes, "qop", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 32, 6, 6])], inits)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def test_qoperator_and_integer_forms_bit_exact():
    model = _qoperator_model()
    net = workloads.import_onnx(model, rounding="half_up")
    assert [op.tag for op in net.ops] == ["qconv1", "qconv2", "iconv3", "qadd"]
    feeds = {"x": np.random.default_rng(1).normal(0, 3, size=(1, 16, 6, 6)).astype(np.float32)}
    ref = reference(model, feeds, rounding="half_up")
    got = run_on_vta(net, {"xq": ref["xq"].astype(np.int8)}, ENV)
    for name in ("c1", "c2", "c3", "y"):
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


@pytest.mark.parametrize("edit, message", [
    (lambda m: _set_scale(m, 0.3), r"scale tensor 's\w+'.* 0\.3\d* is not a power of two"),
    (lambda m: _set_scale(m, [0.5, 0.25]), r"per-channel scale"),
    (lambda m: _set_zero_point(m, 3), r"zero point tensor 'zp\w*'.*must be 0"),
])
def test_scales_vta_cannot_use_are_refused_naming_the_tensor(edit, message):
    m = QdqModel((1, 16, 4, 4), -3, seed=8)
    y = m.conv(m.first, 16, 1, -4, -5)
    model = m.model(y)
    edit(model)
    with pytest.raises(workloads.OnnxImportError, match=message):
        workloads.import_onnx(model, rounding="half_up")


def _first(model, prefix):
    return next(t for t in model.graph.initializer if t.name.startswith(prefix))


def _set_scale(model, value):
    # the weight's DequantizeLinear scale (the model's second scale tensor)
    node = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0].startswith("w"))
    tensor = next(t for t in model.graph.initializer if t.name == node.input[1])
    tensor.CopyFrom(numpy_helper.from_array(np.asarray(value, dtype=np.float32), tensor.name))


def _set_zero_point(model, value):
    tensor = _first(model, "zp")
    tensor.CopyFrom(numpy_helper.from_array(np.int8(value), tensor.name))


def test_add_of_two_scales_is_refused():
    m = QdqModel((1, 16, 4, 4), -3, seed=8)
    a = m.conv(m.first, 16, 1, -4, -5)
    b = m.conv(m.first, 16, 1, -4, -6)
    with pytest.raises(workloads.OnnxImportError, match=rf"operands '{a}' and '{b}' have scales 2\^-5 and 2\^-6"):
        workloads.import_onnx(m.model(m.add(a, b, -5)), rounding="half_up")


@pytest.mark.parametrize("data", [b"", b"not an onnx model at all", bytes(range(256)) * 4])
def test_junk_is_a_named_error(data):
    with pytest.raises(workloads.OnnxImportError, match="ONNX model|no nodes"):
        workloads.import_onnx(data)


def test_truncated_model_is_a_named_error(tmp_path):
    m = QdqModel((1, 16, 4, 4), -3)
    raw = m.model(m.conv(m.first, 16, 1, -4, -5)).SerializeToString()
    for cut in (len(raw) // 3, len(raw) - 5):
        path = tmp_path / "cut.onnx"
        path.write_bytes(raw[:cut])
        with pytest.raises(workloads.OnnxImportError, match="cut.onnx"):
            workloads.import_onnx(path)


def _resnet_like(blocks_per_stage):
    """ResNet-18's stem on the CPU (3-channel conv, max pool) then its basic blocks, with the
    scales Relay's quantization gives VTA (a shift of 8, activations clipped to [-127, 127])."""
    e_act, e_w = -3, -8
    m = QdqModel((1, 3, 224, 224), e_act, seed=9)
    clip = (-127 * 2.0 ** e_act, 127 * 2.0 ** e_act)
    x = m.conv(m.first, 64, 7, e_w, e_act, stride=2, pad=3, relu=True, clip=clip, name="stem")
    x = m.cpu("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
    channels = 64
    for stage, blocks in enumerate(blocks_per_stage, start=1):
        width = 64 << (stage - 1)
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            a = m.conv(x, width, 3, e_w, e_act, stride=stride, pad=1, relu=True, clip=clip)
            b = m.conv(a, width, 3, e_w, e_act, pad=1, clip=clip)
            short = x if channels == width else m.conv(x, width, 1, e_w, e_act, stride=stride, clip=clip)
            x = m.add(short, b, e_act, relu=True, clip=clip)
            channels = width
    return m.model(x)


def test_an_onnx_resnet_gives_the_built_in_resnet18_layers():
    """A QDQ ResNet-18 (its four stages) imports to the ops of workloads.network_ops('resnet18'):
    same layers, same epilogues (Relay's fold of the rounding constant into a bias no relu
    follows), in the same order; the stem stays on the CPU as upstream keeps it."""
    model = _resnet_like((2, 2, 2, 2))
    net = workloads.import_onnx(model, rounding="half_up")
    built_in = [layer for _, layer in workloads.network_ops("resnet18")]
    imported = [op.layer for op in net.ops]
    assert len(imported) == len(built_in) == 27

    def same(a, b):
        return dataclasses_equal(a, b, ignore=("name", "count"))

    # all but the last add: upstream leaves the network's last add unclipped (the CPU pools it),
    # an ONNX QuantizeLinear saturates it to int8
    for got, want in zip(imported[:-1], built_in[:-1]):
        assert same(got, want), (got, want)
    assert imported[-1].epilogue == (("relu",), ("clip", -127, 127)) and built_in[-1].epilogue == (("relu",),)
    cpu = [node for node, _ in net.cpu]
    assert any(node == "Conv stem" for node in cpu) and any(node.startswith("MaxPool") for node in cpu)
    shapes = {(type(l).__name__, l.describe()) for l in net.layers}
    assert shapes == {(type(l).__name__, l.describe()) for l in workloads.network("resnet18")}


def dataclasses_equal(a, b, ignore=()):
    import dataclasses

    return type(a) is type(b) and all(getattr(a, f.name) == getattr(b, f.name)
                                      for f in dataclasses.fields(a) if f.name not in ignore)


def test_workload_file_is_a_study_the_loader_accepts(tmp_path):
    from dse._study import parse_study
    from dse.evaluate import SimulatorEvaluator

    try:
        import tomllib
    except ModuleNotFoundError:
        import tomli as tomllib
    m = QdqModel((1, 16, 8, 8), -4, seed=1)
    a = m.conv(m.first, 32, 3, -5, -6, pad=1, relu=True)
    y = m.add(a, m.conv(a, 32, 3, -5, -6, pad=1, group=2), -6)
    net = workloads.import_onnx(m.model(y), rounding="half_up")
    evaluator = SimulatorEvaluator()
    spec = parse_study(tomllib.loads(net.workload_toml()), str(tmp_path / "s.toml"), evaluator.ops)
    resolved = evaluator.resolve(spec.workloads)
    from dse.evaluate import _layer

    assert [(w.name, w.count) for w in resolved] == [(l.name, l.count) for l in net.layers]
    assert [_layer(w.op, w.params) for w in resolved] == [dataclasses.replace(l, name="", count=1) for l in net.layers]


@settings(max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2 ** 32 - 1))
def test_fuzzed_models_end_in_an_import_or_a_named_error(seed):
    """The importer's entry point on corrupted models (tests/fuzz_cases.py's onnx target; the long
    run is benchmarks/fuzz.py): a network or a one-line OnnxImportError, nothing else."""
    import random

    from tests import fuzz_cases as F

    make, check = F.TARGETS["onnx"]
    assert check(make(random.Random(seed))) in ("ok", "named")

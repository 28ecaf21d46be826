"""Built-in networks (issue #20): every op VTA offloads, in execution order, with its epilogue and
count, as upstream's graph packing offloads them; the slow tests run every distinct layer with
upstream's fallback knobs and TopHub's knobs bit-exactly on the simulator."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import hwconfigs
import simulator
from compiler import workloads
from compiler.ir import CompileError
from compiler.workloads._tophub import _DATA as TOPHUB_DATA

CONVS = (workloads.Conv2D, workloads.GroupConv2D, workloads.Conv2DTranspose)


def _in_shape(layer):
    if isinstance(layer, workloads.Dense):
        return (layer.in_features,)
    channels = layer.channels if isinstance(layer, workloads.Elementwise) else layer.in_channels
    return (channels, layer.height, layer.width)


def _out_shape(layer):
    if isinstance(layer, workloads.Dense):
        return (layer.out_features,)
    if isinstance(layer, workloads.Elementwise):
        return (layer.channels, layer.height, layer.width)
    return (layer.out_channels, layer.out_height, layer.out_width)


def test_network_lists_distinct_layers_with_counts_of_its_instances():
    for name in workloads.NETWORKS:
        layers = workloads.network(name)
        ops = workloads.network_ops(name)
        assert layers and [l.name for l in layers] == list(dict.fromkeys(l.name for l in layers))
        for layer in layers:
            instances = [op for _, op in ops if op.name == layer.name]
            assert layer.count == len(instances) >= 1
            assert all(_in_shape(op) == _in_shape(layer) and _out_shape(op) == _out_shape(layer) for op in instances)
        assert workloads.cpu_ops(name), name


def test_resnet18_is_the_historical_layer_set():
    assert workloads.network("resnet18") == list(workloads.resnet18(residual_adds=True).values())
    assert workloads.network("resnet18", batch=4) == list(workloads.resnet18(batch=4, residual_adds=True).values())
    assert [tag for tag, _ in workloads.network_ops("resnet18")] == [tag for tag, _ in workloads.resnet18_network()]


def test_instances_chain_through_each_network():
    """Every op reads what an earlier op (or the CPU before packing) wrote: sequential networks
    chain op to op; in a ResNet each add joins its block's last conv and the block input."""
    for name in ("mobilenet_g", "dcgan"):
        ops = [layer for _, layer in workloads.network_ops(name)]
        for before, after in zip(ops, ops[1:]):
            assert _out_shape(before) == _in_shape(after), (name, before, after)
    # (network, convs per block, 1x1 shortcut convs: where a stage changes the shape)
    for name, convs_per_block, shortcuts in (("resnet18", 2, 3), ("resnet34", 2, 3), ("resnet50", 3, 4)):
        ops = workloads.network_ops(name)
        block_input = (64, 56, 56)
        for index, (tag, layer) in enumerate(ops):
            if tag.endswith(".conv1"):
                assert _in_shape(layer) == block_input, tag
            if tag.endswith(".add"):
                last_conv = next(l for t, l in reversed(ops[:index]) if t.endswith(f".conv{convs_per_block}"))
                assert _out_shape(layer) == _out_shape(last_conv), tag
                block_input = _out_shape(layer)
        n_convs = sum(isinstance(l, workloads.Conv2D) for _, l in ops)
        n_adds = sum(isinstance(l, workloads.Elementwise) for _, l in ops)
        blocks = {"resnet18": 8, "resnet34": 16, "resnet50": 16}[name]
        assert n_adds == blocks and n_convs == blocks * convs_per_block + shortcuts


def _tophub_sections():
    return json.loads(TOPHUB_DATA.read_text())["sections"]


@pytest.mark.parametrize("network, section", [("resnet18", "Resnet-18"), ("resnet50", "Resnet-50"),
                                              ("mobilenet_g", "MobileNet-G"), ("dcgan", "DCGAN"),
                                              ("lstm_cell", "LSTM cell")])
def test_every_tophub_record_of_the_network_is_one_of_its_layers(network, section):
    """TopHub tuned exactly the layers upstream offloads: each record of the network's section
    (every geometry) answers one of our layers, and each conv-like layer that TopHub covers."""
    for sec in _tophub_sections():
        if not sec["section"].startswith(section + " - "):
            continue
        env = hwconfigs.get_env("pynq", LOG_BATCH=sec["hw"]["LOG_BATCH"], LOG_BLOCK=sec["hw"]["LOG_BLOCK"])
        layers = workloads.network(network, batch=sec["hw"]["BATCH"])
        answered = [layer for layer in layers if workloads.tophub_knobs(layer, env)]
        assert len({json.dumps(r["layer"], sort_keys=True) for r in sec["records"]}) == len(answered), sec["section"]


def test_unknown_network_names_the_known_ones():
    with pytest.raises(CompileError, match=r"unknown network 'mobilenet' \(did you mean 'mobilenet_g'\?\); "
                                           r"built-in networks: resnet18, resnet34"):
        workloads.network("mobilenet")
    with pytest.raises(CompileError, match="unknown network 3"):
        workloads.network(3)


def test_graph_packing_facts():
    """What upstream keeps on the CPU, and the tile padding of YOLO's 255-channel heads."""
    for name in ("resnet18", "resnet50", "mobilenet_g", "yolov3_tiny"):
        assert "first conv" in workloads.cpu_ops(name)[0][0]
    heads = [layer for tag, layer in workloads.network_ops("yolov3_tiny") if tag.startswith("head")]
    assert [h.out_channels for h in heads] == [256, 256]
    groups = [l for l in workloads.network("mobilenet_g") if isinstance(l, workloads.GroupConv2D)]
    assert all(l.in_channels // l.groups == 16 for l in groups) and sum(l.count for l in groups) == 13


# ---- slow: every distinct layer of every network bit-exact -------------------------------------

def _key(layer):
    return (type(layer), layer.describe(), layer.epilogue)


def _distinct_cases():
    """(network, layer) once per distinct layer (shape and epilogue) over all networks; ResNet-18's
    (and so ResNet-34's) are tests/workloads/test_build.py's."""
    seen = {_key(layer) for layer in workloads.resnet18(residual_adds=True).values()}
    cases = []
    for name in workloads.NETWORKS:
        for layer in workloads.network(name):
            key = _key(layer)
            if key not in seen:
                seen.add(key)
                cases.append((name, layer))
    return cases


def _tophub_env(geometry):
    """The hardware of TopHub's section for ``geometry`` ("1x16", "4x8"): its bitstream's geometry
    and buffer sizes."""
    for sec in _tophub_sections():
        if sec["section"].split(" - ")[1].startswith(f"pynq_{geometry}_"):
            return hwconfigs.get_env("pynq", **{k: v for k, v in sec["hw"].items()
                                                if k.startswith("LOG_")})
    raise KeyError(geometry)


def _tophub_cases():
    """TopHub's knobs where TopHub has the network: MobileNet-G and DCGAN on 1x16, ResNet-50 on 1x16 and 4x8."""
    cases = []
    for network, geometry in (("mobilenet_g", "1x16"), ("dcgan", "1x16"), ("resnet50", "1x16"), ("resnet50", "4x8")):
        batch = 4 if geometry == "4x8" else 1
        for layer in workloads.network(network, batch=batch):
            cases.append((network, geometry, layer))
    return cases


def _run(layer, env, knobs):
    mod = workloads.build(layer, env=env, knobs=knobs)
    inputs = workloads.random_inputs(layer, env, 0, knobs)
    out = workloads.empty_output(layer, env)
    simulator.run(mod, *inputs, out)
    np.testing.assert_array_equal(out, workloads.reference(layer, *inputs, env=env))


@pytest.mark.slow
@pytest.mark.parametrize("network, layer", _distinct_cases(), ids=lambda v: getattr(v, "name", v))
def test_every_distinct_layer_with_fallback_knobs_is_bit_exact(network, layer):
    _run(layer, hwconfigs.get_env("pynq"), None)


@pytest.mark.slow
@pytest.mark.parametrize("network, geometry, layer", _tophub_cases(), ids=lambda v: getattr(v, "name", v))
def test_every_tophub_layer_with_tophub_knobs_is_bit_exact(network, geometry, layer):
    env = _tophub_env(geometry)
    found = workloads.tophub_knobs(layer, env)
    if not found:
        assert isinstance(layer, workloads.Elementwise) or network == "mobilenet_g", layer
        return       # TopHub has no record of it (residual adds; MobileNet-G's pointwise convs)
    try:
        workloads.check_knobs(layer, env, found[0])
    except CompileError as exc:
        # AutoTVM tunes a task without the network's fused epilogue: DCGAN's knob sets fill the
        # accumulator, leaving no room for the bias tile of the fused batch-norm; they run the
        # task TopHub tuned (the layer without its bias)
        assert network == "dcgan" and "acc buffer needs" in str(exc), exc
        layer = dataclasses.replace(layer, epilogue=tuple(s for s in layer.epilogue if s[0] != "bias"))
    _run(layer, env, found[0])

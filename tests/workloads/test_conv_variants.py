"""GroupConv2D and Conv2DTranspose: layer validation, shapes and the dilated input."""
import numpy as np
import pytest

from compiler import workloads
from compiler.ir import CompileError


def test_group_conv_shapes_and_macs():
    layer = workloads.GroupConv2D(1, 56, 56, 128, 128, 3, stride=2, pad=1, groups=8, count=2, name="G")
    assert (layer.out_height, layer.out_width) == (28, 28)
    assert layer.macs == 128 * 28 * 28 * 16 * 9
    assert layer.count == 2 and layer.name == "G"


def test_transpose_shapes_follow_relay():
    # DCGAN's first transposed conv: 4x4 -> 8x8 with a 4x4 kernel, stride 2, pad 1
    layer = workloads.Conv2DTranspose(1, 4, 4, 1024, 512, 4, stride=2, pad=1)
    assert (layer.dilated_height, layer.out_height, layer.out_width) == (7, 8, 8)
    assert workloads.Conv2DTranspose(1, 4, 4, 16, 16, 3, stride=2, pad=1, output_padding=1).out_height == 8


@pytest.mark.parametrize("cls, kwargs, words", [
    (workloads.GroupConv2D, {"groups": 3}, ["groups = 3", "in_channels"]),
    (workloads.GroupConv2D, {"groups": 0}, ["groups = 0"]),
    (workloads.Conv2DTranspose, {"pad": 4}, ["pad = 4", "kernel - 1"]),
    (workloads.Conv2DTranspose, {"output_padding": 2, "stride": 2}, ["output_padding = 2", "stride 2"]),
    (workloads.Conv2DTranspose, {"output_padding": -1}, ["output_padding = -1"]),
])
def test_bad_layers_are_refused_naming_the_field(cls, kwargs, words):
    with pytest.raises(CompileError) as err:
        cls(**{"batch": 1, "height": 8, "width": 8, "in_channels": 32, "out_channels": 32, "kernel": 4, **kwargs})
    assert all(w in str(err.value) for w in words)


def test_dilate_input_puts_zeros_between_pixels():
    layer = workloads.Conv2DTranspose(1, 3, 2, 16, 16, 3, stride=2, pad=1)
    data = np.arange(1, 1 + 3 * 2 * 16, dtype=np.int8).reshape(1, 1, 3, 2, 1, 16)
    dilated = workloads.dilate_input(layer, data)
    assert dilated.shape == (1, 1, 5, 3, 1, 16)
    assert (dilated[:, :, ::2, ::2] == data).all()
    assert not dilated[:, :, 1::2].any() and not dilated[:, :, :, 1::2].any()

"""The slice of ``tvm.topi`` VTA schedules use: ``topi.nn.pad``."""
from __future__ import annotations

import types

from . import te
from .ir import CompileError, const


def pad(data, pad_before, pad_after=None, pad_value=0, name="PadInput", attrs=None):
    """Zero padding as a compute stage; with a ``dma_copy`` pragma it becomes DMA padding."""
    n = len(data.shape)
    pad_after = pad_after if pad_after is not None else pad_before
    if len(pad_before) != n or len(pad_after) != n:
        raise CompileError(f"pad of {data.name}: needs {n} pad_before/pad_after values")
    out_shape = tuple(s + b + a for s, b, a in zip(data.shape, pad_before, pad_after))

    def fcompute(*idx):
        conds, src = [], []
        for i, s, b, a in zip(idx, data.shape, pad_before, pad_after):
            if b == 0 and a == 0:
                src.append(i)
                continue
            src.append(i - b)
            if b:
                conds.append(i >= b)
            if a:
                conds.append(i < b + s)
        value = data(*src)
        if not conds:
            return value
        return te.if_then_else(te.all(*conds), value, const(pad_value, data.dtype))

    return te.compute(out_shape, fcompute, name=name)


nn = types.SimpleNamespace(pad=pad)

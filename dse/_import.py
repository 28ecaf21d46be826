"""``vta-dse import MODEL.onnx``: a quantized ONNX model as a study's workloads (TOML)."""
from __future__ import annotations

import sys
from pathlib import Path

from ._study import StudyError


def import_model(args) -> int:
    # compiler.workloads is the op library the import maps onto (the onnx package loads on use)
    from compiler import workloads

    try:
        net = workloads.import_onnx(args.model, rounding=args.rounding)
    except workloads.OnnxImportError as exc:
        raise StudyError(str(exc)) from None
    if not net.ops:
        raise StudyError(f"{args.model}: nothing VTA can offload; on the CPU: "
                         + "; ".join(f"{node} ({why})" for node, why in net.cpu[:5]))
    text = net.workload_toml()
    if args.out:
        try:
            Path(args.out).write_text(text)
        except (OSError, ValueError) as exc:
            raise StudyError(f"--out {args.out!r}: {getattr(exc, 'strerror', None) or exc}") from None
        print(f"{args.out}: {len(net.layers)} layer(s), {len(net.ops)} offloaded op(s), "
              f"{len(net.cpu)} op(s) on the CPU")
        for node, why in net.cpu:
            print(f"  on the CPU: {node}: {why}")
    else:
        sys.stdout.write(text)
    return 0

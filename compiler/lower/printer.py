"""Text form of the loop-nest IR, in the spirit of TVM's printed TIR."""
from __future__ import annotations

from ..ir import Allocate, Attr, Evaluate, For, Seq, Store


def format_ir(stmt, name: str = "main", args=()) -> str:
    lines = [f"def {name}({', '.join(f'{b.name}: {b.dtype}{list(b.shape)}' for b in args)}):"]
    _fmt(stmt, 1, lines)
    return "\n".join(lines)


def _fmt(s, depth, lines):
    pad = "  " * depth
    if s is None:
        lines.append(pad + "pass")
    elif isinstance(s, Seq):
        for x in s.stmts:
            _fmt(x, depth, lines)
    elif isinstance(s, For):
        lines.append(f"{pad}for {s.var.name} in range({s.extent}):")
        _fmt(s.body, depth + 1, lines)
    elif isinstance(s, Attr):
        node = f"[{getattr(s.node, 'name', s.node)}] " if s.node is not None else ""
        value = f'"{s.value}"' if isinstance(s.value, str) else s.value
        lines.append(f"{pad}attr {node}{s.key} = {value}:")
        _fmt(s.body, depth + 1, lines)
    elif isinstance(s, Allocate):
        b = s.buffer
        lines.append(f"{pad}allocate {b.name}[{b.dtype} * {b.extent}], {b.scope}")
        _fmt(s.body, depth, lines)
    elif isinstance(s, Store):
        lines.append(f"{pad}{s.buffer.name}[{s.index!r}] = {s.value!r}")
    elif isinstance(s, Evaluate):
        lines.append(f"{pad}{s.call!r}")
    else:
        lines.append(f"{pad}{s!r}")

"""The lowering pipeline as data: an ordered list of named passes (print it, reorder it, drop
one to see what it does). Order follows upstream's ``vta.build_config`` phases (vta-spec §6.3):
token insertion runs before virtual threads are expanded, ALU injection after, uop loop folding
last."""
from __future__ import annotations

import dataclasses

from ..ir import Attr, For, Seq, Allocate
from .passes.access import check_allocations, lower_storage_access
from .passes.alu import annotate_alu_coproc_scope, inject_alu_intrin
from .passes.dma import inject_dma_intrin
from .passes.fold import fold_uop_loop
from .passes.lift import lift_coproc_scope, lift_uop_scope
from .passes.storage import storage_rewrite
from .passes.sync import coproc_sync
from .passes.vthread import inject_virtual_thread
from .printer import format_ir
from .schedule_ops import schedule_ops


def _has_coproc(s):
    if isinstance(s, Attr):
        return s.key == "coproc_scope" or _has_coproc(s.body)
    if isinstance(s, Seq):
        return any(_has_coproc(x) for x in s.stmts)
    if isinstance(s, (For, Allocate)):
        return _has_coproc(s.body)
    return False


def _coproc_sync(stmt, ctx):
    # TVM's CoProcSync leaves functions without coprocessor code untouched.
    return coproc_sync(stmt, ctx) if _has_coproc(stmt) else stmt


PASSES = [
    ("inject_dma_intrin", inject_dma_intrin),                  # phase 1
    ("annotate_alu_coproc_scope", annotate_alu_coproc_scope),
    ("lift_uop_scope", lift_uop_scope),
    ("lift_coproc_scope", lift_coproc_scope),
    ("coproc_sync", _coproc_sync),
    ("storage_rewrite", storage_rewrite),
    ("inject_virtual_thread", inject_virtual_thread),          # phase 2
    ("check_allocations", check_allocations),
    ("inject_alu_intrin", inject_alu_intrin),
    ("lower_storage_access", lower_storage_access),            # phase 3
    ("fold_uop_loop", fold_uop_loop),
]


@dataclasses.dataclass
class Context:
    env: object
    schedule: object = None


class LoweredFunc:
    """Result of :func:`lower`: the final statement, argument buffers, printable."""

    def __init__(self, name, body, args, buffers):
        self.name, self.body, self.args, self.buffers = name, body, args, buffers

    def __str__(self):
        return format_ir(self.body, self.name, self.args)

    __repr__ = __str__


def lower(s, args, name: str = "main", env=None, simple_mode: bool = True, passes=None, **_ignored):
    """Lower a schedule to the final loop-nest IR (all VTA passes applied)."""
    if env is None:
        import hwconfigs
        env = hwconfigs.get_env()
    body, low = schedule_ops(s, args, env)
    ctx = Context(env, s)
    for pass_name, fn in (PASSES if passes is None else passes):
        body = fn(body, ctx)
    arg_bufs = [low.buffers[t.op] for t in args]
    return LoweredFunc(name, body, arg_bufs, low.buffers)

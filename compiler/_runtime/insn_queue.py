"""The instruction vector and dependency-token insertion (upstream ``InsnQueue``, vta-spec §5.3).

Stages: 1 load, 2 compute, 3 store. A pop is never emitted by itself: it stays *pending* on its
stage and is attached to the next instruction created for that stage, or committed as a NOP when
a second pop of the same kind arrives or the stage must push. A push is set on the stream's last
instruction when that instruction belongs to the pushing stage, else carried by a NOP.
"""
from __future__ import annotations

from ..isa import LOAD, MEM_ACC, MEM_ACC_8BIT, MEM_INP, MEM_UOP, STORE, AluInsn, GemmInsn, Insn, MemInsn
from .errors import RuntimeCheckError

NO_STAGE, LOAD_STAGE, COMPUTE_STAGE, STORE_STAGE = 0, 1, 2, 3
STAGE_NAMES = {LOAD_STAGE: "load", COMPUTE_STAGE: "compute", STORE_STAGE: "store"}


def memory_stage(memory_type: int) -> int:
    """Stage that executes a LOAD into ``memory_type`` (upstream ``GetMemPipelineStage``)."""
    return COMPUTE_STAGE if memory_type in (MEM_UOP, MEM_ACC, MEM_ACC_8BIT) else LOAD_STAGE


def pipeline_stage(insn: Insn) -> int:
    """Stage of an instruction already in the stream (upstream ``GetPipelineStage``): a LOAD NOP
    (x_size 0) belongs to no stage, so a push never lands on it; a STORE NOP is still a store."""
    if isinstance(insn, (GemmInsn, AluInsn)):
        return COMPUTE_STAGE
    if isinstance(insn, MemInsn):
        if insn.opcode == STORE:
            return STORE_STAGE
        if insn.x_size == 0:
            return NO_STAGE
        return memory_stage(insn.memory_type)
    return NO_STAGE  # FINISH: never the last instruction while the stream is open


def check_route(from_stage: int, to_stage: int, call: str) -> None:
    for stage in (from_stage, to_stage):
        if stage not in STAGE_NAMES:
            raise RuntimeCheckError(f"{call}({from_stage}, {to_stage}): stage {stage} is not 1 (load), "
                                    f"2 (compute) or 3 (store)")
    if from_stage == to_stage:
        raise RuntimeCheckError(f"{call}({from_stage}, {to_stage}): a token goes between two different stages")
    if {from_stage, to_stage} == {LOAD_STAGE, STORE_STAGE}:
        raise RuntimeCheckError(f"{call}({from_stage}, {to_stage}): there is no token queue between load and "
                                f"store; only load<->compute and compute<->store")


class InsnQueue:
    """The growing instruction stream of one synchronize, plus the pending pops of each stage.

    Pending pops survive :meth:`reset`: upstream never clears them between streams (§5.7).
    """

    def __init__(self):
        self.insns: list[Insn] = []
        self.pending_prev = [0, 0, 0, 0]   # index = stage; 0 unused
        self.pending_next = [0, 0, 0, 0]

    def __len__(self) -> int:
        return len(self.insns)

    def create(self, stage: int, insn: Insn) -> Insn:
        """Append ``insn`` for ``stage``, taking over that stage's pending pops."""
        insn.pop_prev, insn.pop_next = self.pending_prev[stage], self.pending_next[stage]
        insn.push_prev = insn.push_next = 0
        self.pending_prev[stage] = self.pending_next[stage] = 0
        self.insns.append(insn)
        return insn

    def dep_pop(self, from_stage: int, to_stage: int) -> None:
        check_route(from_stage, to_stage, "dep_pop")
        # The pop executes on ``to_stage``: from an earlier stage it is a pop_prev, else pop_next.
        pending = self.pending_prev if from_stage < to_stage else self.pending_next
        if pending[to_stage]:
            self.commit(to_stage)
        pending[to_stage] = 1

    def dep_push(self, from_stage: int, to_stage: int) -> None:
        check_route(from_stage, to_stage, "dep_push")
        self.commit(from_stage)
        forward = from_stage < to_stage
        if self.insns:
            last = self.insns[-1]
            if pipeline_stage(last) == from_stage:
                if forward and not last.push_next:
                    last.push_next = 1
                    return
                if not forward and not last.push_prev:
                    last.push_prev = 1
                    return
        self.push_nop(from_stage, push_prev=int(not forward), push_next=int(forward))

    def commit(self, stage: int) -> None:
        """Emit the stage's pending pops on a NOP of their own."""
        if self.pending_prev[stage] or self.pending_next[stage]:
            self.push_nop(stage, pop_prev=self.pending_prev[stage], pop_next=self.pending_next[stage])
            self.pending_prev[stage] = self.pending_next[stage] = 0

    def push_nop(self, stage: int, push_prev=0, push_next=0, pop_prev=0, pop_next=0) -> None:
        # Upstream NOP encoding: load stage LOAD INP, compute stage LOAD UOP, store stage STORE of
        # memory type 0; x_size 0 makes the instruction dependency-only.
        opcode = STORE if stage == STORE_STAGE else LOAD
        memory_type = MEM_INP if stage == LOAD_STAGE else MEM_UOP
        self.insns.append(MemInsn(pop_prev=pop_prev, pop_next=pop_next, push_prev=push_prev,
                                  push_next=push_next, opcode=opcode, memory_type=memory_type))

    def pending_stages(self) -> list[str]:
        return [f"{STAGE_NAMES[s]} stage pop_{kind}" for s in STAGE_NAMES
                for kind, bits in (("prev", self.pending_prev), ("next", self.pending_next)) if bits[s]]

    def reset(self) -> None:
        self.insns = []

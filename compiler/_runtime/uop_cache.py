"""Uop-SRAM residency of kernels within one stream (upstream ``UopQueue``, vta-spec §5.5)."""
from __future__ import annotations

import dataclasses

import numpy as np

from .errors import RuntimeCheckError
from .kernels import UopKernel

UOP_ELEM_BYTES = 4


@dataclasses.dataclass(frozen=True)
class UopLoad:
    """What the LOAD UOP for a newly placed kernel must say."""

    sram_base: int
    count: int
    staging_offset: int   # bytes from the start of the uop staging buffer


class UopCache:
    """A FIFO ring over uop SRAM holding the kernels used in the current stream.

    ``cache`` is kept in SRAM order; placing a kernel that does not fit behind the last one wraps
    to 0 and evicts every kernel it overlaps. The staging buffer is filled from the *final* list
    at synchronize, while each LOAD UOP points at the offset its kernel had when it was loaded:
    after a wrap, earlier loads read the wrong words. That upstream defect is reproduced (§5.5).
    """

    def __init__(self, depth: int):
        self.depth = depth
        self.cache: list[UopKernel] = []
        self._cache_idx = 0
        self._sram_begin = 0
        self._sram_end = 0
        self.wrapped = False   # did a wrap happen in this stream (the staging defect applies)

    def place(self, kernel: UopKernel) -> UopLoad | None:
        """Make ``kernel`` resident; the load to emit, or None if it is already resident."""
        if kernel.resident:
            return None
        count = len(kernel)
        if count == 0:
            raise RuntimeCheckError(f"{kernel.name} recorded no uops; upstream rejects an empty kernel "
                                    f"when it is pushed (CHECK(kernel->cached()))")
        if count > self.depth:
            raise RuntimeCheckError(f"{kernel.name} has {count} uops, more than the uop SRAM depth {self.depth}")
        begin = 0
        if self._sram_end + count > self.depth:
            # Wrap: restart at SRAM 0 and scan the list from its start.
            self._cache_idx = 0
            self._sram_begin = 0
            self._sram_end = count
            self.wrapped = True
        else:
            begin = self._sram_end
            self._sram_end += count
        evict_begin = self._cache_idx
        while self._cache_idx < len(self.cache) and self.cache[self._cache_idx].sram_begin < self._sram_end:
            victim = self.cache[self._cache_idx]
            victim.sram_begin = victim.sram_end = 0
            self._cache_idx += 1
        kernel.sram_begin, kernel.sram_end = begin, self._sram_end
        self.cache[evict_begin:self._cache_idx] = [kernel]
        self._cache_idx = evict_begin + 1
        # Upstream FlushUopLoad: the staging offset is the size of the kernels before it in the list.
        offset = sum(len(k) for k in self.cache[:self._cache_idx - 1]) * UOP_ELEM_BYTES
        load = UopLoad(self._sram_begin, self._sram_end - self._sram_begin, offset)
        self._sram_begin = self._sram_end
        return load

    def staged_words(self) -> np.ndarray:
        """The staging buffer contents at synchronize: the list's kernels concatenated in order."""
        if not self.cache:
            return np.zeros(0, np.uint32)
        return np.concatenate([k.words for k in self.cache]).astype(np.uint32)

    def reset(self) -> None:
        """After a run nothing may be assumed resident (upstream ``UopQueue::Reset``)."""
        for kernel in self.cache:
            kernel.sram_begin = kernel.sram_end = 0
        self.cache = []
        self._cache_idx = 0
        self._sram_begin = self._sram_end = 0
        self.wrapped = False

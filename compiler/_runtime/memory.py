"""The fsim's paged device-memory allocator (vta-spec §3.2, upstream ``src/vmem/virtual_memory.cc``).

Only addresses are managed here: no bytes are held. The physical addresses decide the
``dram_base`` fields of every LOAD/STORE, so allocation order and page rounding are reproduced
exactly: pages of 4 KiB numbered in allocation order, physical address ``(first_page + 1) << 12``
(0 is never a valid address), freed blocks reused whole by the best-fitting later request.
"""
from __future__ import annotations

import dataclasses

from .errors import RuntimeCheckError

PAGE_BITS = 12
PAGE_BYTES = 1 << PAGE_BITS


@dataclasses.dataclass(frozen=True)
class Allocation:
    """A block of whole pages: physical byte address, pages, and the size that was asked for."""

    phys_addr: int
    num_pages: int
    nbytes: int

    @property
    def end(self) -> int:
        """One past the last byte of the block (whole pages)."""
        return self.phys_addr + (self.num_pages << PAGE_BITS)


class DeviceMemory:
    """Physical-address allocator with upstream's page numbering and best-fit free list."""

    def __init__(self):
        self._next_page = 0
        self._blocks: dict[int, Allocation] = {}          # phys -> block, every block ever created
        self._live: dict[int, Allocation] = {}            # phys -> block currently handed out
        self._free: list[tuple[int, int, int]] = []       # (num_pages, free order, phys)
        self._free_order = 0

    def alloc(self, nbytes: int) -> int:
        """Physical byte address of a new block of ``ceil(nbytes / 4096)`` pages."""
        nbytes = int(nbytes)
        if nbytes <= 0:
            raise RuntimeCheckError(f"cannot allocate {nbytes} bytes of device memory: the size must be positive")
        pages = -(-nbytes // PAGE_BYTES)
        # Upstream keeps freed blocks in a multimap keyed by page count and takes lower_bound:
        # the smallest block that fits, the earliest freed among equals. It is reused whole.
        fitting = [entry for entry in self._free if entry[0] >= pages]
        if fitting:
            entry = min(fitting)
            self._free.remove(entry)
            block = dataclasses.replace(self._blocks[entry[2]], nbytes=nbytes)
        else:
            block = Allocation((self._next_page + 1) << PAGE_BITS, pages, nbytes)
            self._next_page += pages
        self._blocks[block.phys_addr] = block
        self._live[block.phys_addr] = block
        return block.phys_addr

    def free(self, phys_addr: int) -> None:
        block = self._live.pop(int(phys_addr), None)
        if block is None:
            raise RuntimeCheckError(f"free of {int(phys_addr):#x}: not the start of a live device allocation")
        self._free.append((block.num_pages, self._free_order, block.phys_addr))
        self._free_order += 1

    def allocation(self, phys_addr: int) -> Allocation:
        """The live block starting at ``phys_addr``."""
        try:
            return self._live[int(phys_addr)]
        except KeyError:
            raise RuntimeCheckError(f"{int(phys_addr):#x} is not the start of a live device allocation") from None

    def owner(self, addr: int) -> Allocation | None:
        """The live block containing byte address ``addr`` (None if none does)."""
        for block in self._live.values():
            if block.phys_addr <= addr < block.end:
                return block
        return None

    @property
    def end(self) -> int:
        """One past the highest physical byte address ever handed out."""
        return (self._next_page + 1) << PAGE_BITS

    def __repr__(self) -> str:
        return f"DeviceMemory({len(self._live)} live blocks, {self._next_page} pages, end {self.end:#x})"

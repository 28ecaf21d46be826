"""Bit positions of every VTA instruction and micro-op field — the one place they are derived.

Upstream declares the instructions as C structs of ``uint64_t`` bit-fields (uops: ``uint32_t``).
GCC/Clang place fields in declaration order from the least significant free bit; a field that
would straddle a storage-unit boundary starts at the next unit instead (vta-spec §2.8). The
widths depend on the buffer depths, so the layout is a function of the configuration.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ._config import HwConfig

INSN_BITS = 128
UOP_BITS = 32
LOG_UOP_ELEM_BYTES = 2          # a micro-op is 32 bits
HEADER = (("opcode", 3), ("pop_prev_dep", 1), ("pop_next_dep", 1),
          ("push_prev_dep", 1), ("push_next_dep", 1))
MAX_SRAM_DEPTH = 1 << 16        # sram_base is a 16-bit field
MAX_ELEM_BYTES = 4096           # the runtime checks element sizes against the 4 KiB page


@dataclasses.dataclass(frozen=True)
class FieldLayout:
    """Ordered (name, lsb, width) triples of one struct; ``bits`` is its size once packed."""

    fields: tuple[tuple[str, int, int], ...]
    bits: int

    def __post_init__(self):
        object.__setattr__(self, "_index", {field: (lsb, width) for field, lsb, width in self.fields})

    def __getitem__(self, name: str) -> tuple[int, int]:
        return self._index[name]

    def names(self) -> tuple[str, ...]:
        return tuple(f for f, _, _ in self.fields)


def pack_fields(widths, unit_bits: int) -> FieldLayout:
    """Place bit-fields as the System V ABI does for ``uintN_t`` fields of ``unit_bits``."""
    placed, pos = [], 0
    for name, width in widths:
        if width > unit_bits:
            raise ValueError(f"field {name} of {width} bits exceeds its {unit_bits}-bit storage unit")
        if pos // unit_bits != (pos + width - 1) // unit_bits and width > 0:
            pos = (pos // unit_bits + 1) * unit_bits
        placed.append((name, pos, width))
        pos += width
    size = -(-pos // unit_bits) * unit_bits
    return FieldLayout(tuple(placed), size)


@dataclasses.dataclass(frozen=True)
class IsaLayout:
    """Log2 depths and the packed layouts of the four structs for one configuration."""

    log_uop_depth: int
    log_inp_depth: int
    log_wgt_depth: int
    log_acc_depth: int
    mem: FieldLayout
    gemm: FieldLayout
    alu: FieldLayout
    uop: FieldLayout


def log_depths(cfg: "HwConfig") -> dict[str, int]:
    """log2 of each SRAM's depth in elements (one element = one tensor tile)."""
    return {
        "uop": cfg.LOG_UOP_BUFF_SIZE - LOG_UOP_ELEM_BYTES,
        "inp": cfg.LOG_INP_BUFF_SIZE + 3 - cfg.LOG_BATCH - cfg.LOG_BLOCK - cfg.LOG_INP_WIDTH,
        "wgt": cfg.LOG_WGT_BUFF_SIZE + 3 - 2 * cfg.LOG_BLOCK - cfg.LOG_WGT_WIDTH,
        "acc": cfg.LOG_ACC_BUFF_SIZE + 3 - cfg.LOG_BATCH - cfg.LOG_BLOCK - cfg.LOG_ACC_WIDTH,
    }


def isa_layout(cfg: "HwConfig") -> IsaLayout:
    """Every field width and position of the v2 (HW_VER 0.0.2) ISA for ``cfg``."""
    d = log_depths(cfg)
    lu, li, lw, la = d["uop"], d["inp"], d["wgt"], d["acc"]
    loop = (("reset_reg", 1), ("uop_bgn", lu), ("uop_end", lu + 1),
            ("iter_out", 14), ("iter_in", 14))
    mem = pack_fields(HEADER + (
        ("memory_type", 3), ("sram_base", 16), ("dram_base", 32), ("y_size", 16), ("x_size", 16),
        ("x_stride", 16), ("y_pad_0", 4), ("y_pad_1", 4), ("x_pad_0", 4), ("x_pad_1", 4)), 64)
    gemm = pack_fields(HEADER + loop + (
        ("dst_factor_out", la), ("dst_factor_in", la), ("src_factor_out", li),
        ("src_factor_in", li), ("wgt_factor_out", lw), ("wgt_factor_in", lw)), 64)
    alu = pack_fields(HEADER + loop + (
        ("dst_factor_out", la), ("dst_factor_in", la), ("src_factor_out", la),
        ("src_factor_in", la), ("alu_opcode", 3), ("use_imm", 1), ("imm", 16)), 64)
    uop = pack_fields((("dst_idx", la), ("src_idx", max(la, li)), ("wgt_idx", lw)), 32)
    return IsaLayout(lu, li, lw, la, mem, gemm, alu, uop)


def check_geometry(cfg: "HwConfig") -> None:
    """Raise ConfigError unless every buffer holds a tile and every struct fits its size."""
    from ._config import ConfigError

    if cfg.LOG_ACC_WIDTH < max(cfg.LOG_INP_WIDTH, cfg.LOG_WGT_WIDTH):
        raise ConfigError(
            f"LOG_ACC_WIDTH = {cfg.LOG_ACC_WIDTH} must be at least LOG_INP_WIDTH = {cfg.LOG_INP_WIDTH} "
            f"and LOG_WGT_WIDTH = {cfg.LOG_WGT_WIDTH}: the accumulator holds their products")
    elem_bits = {
        "inp": cfg.LOG_BATCH + cfg.LOG_BLOCK + cfg.LOG_INP_WIDTH,
        "wgt": 2 * cfg.LOG_BLOCK + cfg.LOG_WGT_WIDTH,
        "acc": cfg.LOG_BATCH + cfg.LOG_BLOCK + cfg.LOG_ACC_WIDTH,
    }
    for name, log_bits in elem_bits.items():
        if log_bits < 3:
            raise ConfigError(f"one {name} tile would be {1 << log_bits} bits, less than a byte")
        if (1 << (log_bits - 3)) > MAX_ELEM_BYTES:
            raise ConfigError(f"one {name} tile is {1 << (log_bits - 3)} B; the runtime allows at most "
                              f"{MAX_ELEM_BYTES} B (LOG_BATCH/LOG_BLOCK/LOG_{name.upper()}_WIDTH too large)")
    for name, log_depth in log_depths(cfg).items():
        key = f"LOG_{name.upper()}_BUFF_SIZE"
        if log_depth < 0:
            need = getattr(cfg, key) - log_depth
            raise ConfigError(f"{key} = {getattr(cfg, key)} cannot hold one {name} tile; "
                              f"needs at least {need}")
        if (1 << log_depth) > MAX_SRAM_DEPTH:
            high = getattr(cfg, key) - (log_depth - 16)
            raise ConfigError(f"{key} = {getattr(cfg, key)} gives {1 << log_depth} {name} tiles; the 16-bit "
                              f"sram_base field addresses at most {MAX_SRAM_DEPTH} (use at most {high})")
    layout = isa_layout(cfg)
    too_wide = [(kind.upper() + " instruction", getattr(layout, kind).bits, INSN_BITS)
                for kind in ("mem", "gemm", "alu") if getattr(layout, kind).bits > INSN_BITS]
    if layout.uop.bits > UOP_BITS:
        too_wide.append(("micro-op", sum(w for _, _, w in layout.uop.fields), UOP_BITS))
    if too_wide:
        what, bits, limit = too_wide[0]
        raise ConfigError(
            f"the {what} would need {bits} bits for this geometry, more than {limit} "
            f"(log2 depths: uop {layout.log_uop_depth}, inp {layout.log_inp_depth}, "
            f"wgt {layout.log_wgt_depth}, acc {layout.log_acc_depth}); "
            + ("allowed with the other keys as given: " + ", ".join(
                f"{key} <= {high}" for key, high in _largest_fitting(cfg).items())
               if _largest_fitting(cfg) else "no single buffer-size key can fix it"))


def _fields_fit(cfg: "HwConfig") -> bool:
    layout = isa_layout(cfg)
    return (max(layout.mem.bits, layout.gemm.bits, layout.alu.bits) <= INSN_BITS
            and layout.uop.bits <= UOP_BITS)


def _largest_fitting(cfg: "HwConfig") -> dict[str, int]:
    """For each buffer-size key, the largest value whose fields fit, the others held fixed."""

    out = {}
    for name in ("uop", "inp", "wgt", "acc"):
        key = f"LOG_{name.upper()}_BUFF_SIZE"
        value = getattr(cfg, key)
        while value >= 0:
            trial = _unchecked_replace(cfg, **{key: value})
            if log_depths(trial)[name] < 0:
                break
            if _fields_fit(trial):
                out[key] = value
                break
            value -= 1
    return out


def _unchecked_replace(cfg, **changes):
    """A copy of cfg with changes, bypassing validation (used only to search for limits)."""
    clone = object.__new__(type(cfg))
    for name, value in {**cfg.__dict__, **changes}.items():
        object.__setattr__(clone, name, value)
    return clone

"""The VTA hardware parameter set: upstream ``vta_config.json`` keys, loading and validation.

Upstream has no validator; the legal ranges here follow from the instruction bit-field layouts
(vta-spec §1.7, §2.8). Every rejection raises :class:`ConfigError` naming the key and the range.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from pathlib import Path
from typing import Any, Mapping

PRESET_DIR = Path(__file__).parent / "presets"

TARGETS = ("sim", "tsim", "pynq", "ultra96", "zcu104", "de10nano", "intelfocl")

# key -> (type, inclusive lower bound, inclusive upper bound); bounds None for strings.
# The numeric bounds are the coarse per-key ranges; the cross-key limits (instruction and uop
# fields must fit) are checked in :func:`hwconfigs._isa_layout.isa_layout`.
FIELDS: dict[str, tuple[type, int | None, int | None]] = {
    "TARGET": (str, None, None),
    "HW_VER": (str, None, None),
    "LOG_INP_WIDTH": (int, 2, 5),
    "LOG_WGT_WIDTH": (int, 2, 5),
    "LOG_ACC_WIDTH": (int, 3, 5),
    "LOG_BATCH": (int, 0, 8),
    "LOG_BLOCK": (int, 0, 8),
    "LOG_UOP_BUFF_SIZE": (int, 2, 24),
    "LOG_INP_BUFF_SIZE": (int, 0, 24),
    "LOG_WGT_BUFF_SIZE": (int, 0, 24),
    "LOG_ACC_BUFF_SIZE": (int, 0, 24),
}


from ._timing import TIMING_KEYS, TIMING_MAX

ALL_KEYS = tuple(FIELDS) + tuple(TIMING_KEYS)
OPTIONAL_KEYS = ("HW_VER",)
MAX_CONFIG_BYTES = 1 << 20


class ConfigError(ValueError):
    """A hardware configuration that VTA cannot be built with (names the key and the range)."""


def _short(value) -> str:
    """``repr(value)``, cut short: a fuzzed 4300-digit number or a huge string stays readable."""
    try:
        text = repr(value)
    except ValueError:   # an int beyond Python's str-conversion digit limit
        return f"<integer of about {value.bit_length() * 30103 // 100000} digits>"
    return text if len(text) <= 80 else text[:77] + "..."


def _closest(key: str, valid) -> str:
    match = difflib.get_close_matches(key, list(valid), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


@dataclasses.dataclass(frozen=True)
class HwConfig:
    """One VTA hardware configuration, with exactly the keys of upstream ``vta_config.json``."""

    TARGET: str = "sim"
    HW_VER: str = "0.0.2"
    LOG_INP_WIDTH: int = 3
    LOG_WGT_WIDTH: int = 3
    LOG_ACC_WIDTH: int = 5
    LOG_BATCH: int = 0
    LOG_BLOCK: int = 4
    LOG_UOP_BUFF_SIZE: int = 15
    LOG_INP_BUFF_SIZE: int = 15
    LOG_WGT_BUFF_SIZE: int = 18
    LOG_ACC_BUFF_SIZE: int = 17
    # Optional timing keys of our own (None: the target's default; see hwconfigs._timing).
    TIMING_CLOCK_MHZ: float | None = None
    TIMING_BUS_BYTES: int | None = None
    TIMING_DRAM_EFFICIENCY: float | None = None
    TIMING_DMA_LATENCY: int | None = None
    TIMING_GEMM_II: int | None = None
    TIMING_ALU_II: int | None = None
    TIMING_ALU_II_IMM: int | None = None
    TIMING_PIPELINE_FILL: int | None = None
    TIMING_FETCH_CYCLES: int | None = None
    TIMING_CMD_QUEUE_DEPTH: int | None = None

    def __post_init__(self):
        for key, (kind, low, high) in FIELDS.items():
            value = getattr(self, key)
            if kind is int:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"{key} must be an integer, got {_short(value)}")
                if not low <= value <= high:
                    raise ConfigError(f"{key} = {_short(value)} is out of range [{low}, {high}]")
            elif not isinstance(value, str):
                raise ConfigError(f"{key} must be a string, got {_short(value)}")
        for key, (_, kind, low) in TIMING_KEYS.items():
            value = getattr(self, key)
            if value is None:
                continue
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not numeric or (kind is int and not isinstance(value, int)):
                raise ConfigError(f"{key} must be {'an integer' if kind is int else 'a number'}, got {_short(value)}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{key} = {value} must be a finite number")
            if not low <= value <= TIMING_MAX[key]:
                raise ConfigError(f"{key} = {value:.6g} is out of range [{low}, {TIMING_MAX[key]}]"
                                  if isinstance(value, float) else
                                  f"{key} = {_short(value)} is out of range [{low}, {TIMING_MAX[key]}]")
        if self.TARGET not in TARGETS:
            raise ConfigError(f"TARGET = {self.TARGET!r} is not one of {', '.join(TARGETS)}"
                              + _closest(self.TARGET, TARGETS))
        # Importing here keeps the layout rule in its own module while validating on creation.
        from ._isa_layout import check_geometry
        check_geometry(self)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> "HwConfig":
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a JSON object of config keys, got {type(data).__name__}")
        unknown = [k for k in data if k not in ALL_KEYS]
        if unknown:
            key = unknown[0]
            hint = _closest(key, ALL_KEYS) if isinstance(key, str) else ""
            raise ConfigError(f"{source}: unknown key {_short(key)}{hint}; "
                              f"valid keys: {', '.join(ALL_KEYS)}")
        # Upstream's files always carry every key; a missing one is a truncated or hand-edited
        # file, not a request for our defaults. HW_VER only labels the hardware (no figure depends
        # on it), and published build records leave it out: it defaults to the current version.
        missing = [k for k in FIELDS if k not in data and k not in OPTIONAL_KEYS]
        if missing:
            raise ConfigError(f"{source}: missing key(s) {', '.join(missing)}; a hardware config has all of "
                              f"{', '.join(k for k in FIELDS if k not in OPTIONAL_KEYS)} "
                              f"(HW_VER and the TIMING_* keys are optional)")
        return cls(**dict(data))

    @classmethod
    def load(cls, path: str | Path) -> "HwConfig":
        try:
            path = Path(path)
            raw = path.read_bytes()
        except (OSError, ValueError, TypeError) as exc:   # ValueError: a NUL byte in the name
            raise ConfigError(f"cannot read hardware config {_short(str(path))}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {len(raw)} bytes is not a hardware config (at most {MAX_CONFIG_BYTES})")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        except RecursionError:
            raise ConfigError(f"{path}: JSON nested too deeply to be a hardware config") from None
        except ValueError as exc:   # e.g. an integer beyond Python's digit limit
            raise ConfigError(f"{path}: unreadable JSON value: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def preset(cls, name: str) -> "HwConfig":
        names = preset_names()
        if name not in names:
            raise ConfigError(f"unknown preset {_short(name)}{_closest(str(name), names)}; presets: {', '.join(names)}")
        path = PRESET_DIR / f"{name}.json"
        return cls.load(path)

    def replace(self, **overrides) -> "HwConfig":
        unknown = [k for k in overrides if k not in ALL_KEYS]
        if unknown:
            key = unknown[0]
            raise ConfigError(f"unknown key {_short(key)}{_closest(key, ALL_KEYS)}; valid keys: {', '.join(ALL_KEYS)}")
        return dataclasses.replace(self, **overrides)

    # ---- output -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Upstream's keys, then the timing keys this config sets (upstream tools ignore them)."""
        out = {key: getattr(self, key) for key in FIELDS}
        out.update({key: getattr(self, key) for key in TIMING_KEYS if getattr(self, key) is not None})
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def resolve_config(spec: "str | Path | HwConfig | Mapping | None" = None, **overrides) -> HwConfig:
    """A config from a preset name, a JSON path, a mapping or a HwConfig, with key overrides."""
    if spec is None:
        cfg = HwConfig.preset("default")
    elif isinstance(spec, HwConfig):
        cfg = spec
    elif isinstance(spec, Mapping):
        cfg = HwConfig.from_dict(spec)
    elif isinstance(spec, (str, Path)):
        text = str(spec)
        if "\0" in text:
            raise ConfigError(f"hardware config name {_short(text)} contains a NUL byte")
        try:
            is_file = Path(text).is_file()
        except (OSError, ValueError):   # e.g. a name too long for the file system
            is_file = False
        if text.endswith(".json") or "/" in text or is_file:
            cfg = HwConfig.load(text)
        else:
            cfg = HwConfig.preset(text)
    else:
        raise ConfigError(f"a hardware config is a preset name, a JSON path, a mapping or a HwConfig, "
                          f"not {type(spec).__name__}")
    return cfg.replace(**overrides) if overrides else cfg

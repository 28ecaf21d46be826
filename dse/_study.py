"""Study files (``studies/*.toml``): the schema, strict validation and the parsed ``StudySpec``.

Every table declares its keys; an unknown key is an error naming it, where it sits and the
closest valid key (timeloopfe style). Values out of range and search spaces that cannot hold a
single valid hardware configuration are refused here, before anything runs.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any, Mapping

try:
    import tomllib
except ModuleNotFoundError:  # python < 3.11
    import tomli as tomllib

import hwconfigs

from ._columns import LOG_KEYS, RESOURCES
from .runners import RUNNERS

SAMPLERS = ("tpe", "nsga2", "random", "grid", "gp", "cmaes")
INNER_SAMPLERS = ("tpe", "random", "grid")
OBJECTIVES = ("latency", *RESOURCES)
DIRECTIONS = ("minimize", "maximize")
VERIFY = ("all", "top", "none")
REQUIRED = object()
# Upper bounds of numeric study keys: far beyond any real study, small enough for every consumer
# (numpy and Optuna seeds are 32-bit, timeouts go to timers and sleeps).
MAX_SEED = 2 ** 31 - 1
MAX_TRIALS = 10 ** 6
# [schedule] exhaustive_up_to: off unless a study asks (a dense layer's candidates take the general
# path, tens of ms each, so "cheap" depends on the layers); the shipped studies set it.
EXHAUSTIVE_UP_TO = 0
MAX_EXHAUSTIVE = 10 ** 7
MAX_TIMEOUT_S = 366 * 24 * 3600.0
MAX_STUDY_BYTES = 1 << 20
MAX_NAME_CHARS = 200
# Spaces up to this many hardware points are enumerated when the file is loaded, to refuse a
# space without a single valid configuration.
ENUMERATE_LIMIT = 50_000


class StudyError(ValueError):
    """A study file (or a command-line override) that cannot be run; the message names the key."""


def _closest(key: str, valid) -> str:
    match = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


@dataclasses.dataclass(frozen=True)
class HwKnob:
    name: str
    values: tuple[int, ...]        # every value, ascending
    is_range: bool                 # from {low, high}: an integer distribution, else categorical

    @property
    def low(self) -> int:
        return self.values[0]

    @property
    def high(self) -> int:
        return self.values[-1]


@dataclasses.dataclass(frozen=True)
class Workload:
    """One layer of the study, as plain data (the evaluator builds the real operator)."""

    name: str
    op: str
    params: tuple            # sorted (key, value) pairs
    count: int = 1

    @property
    def param_dict(self) -> dict:
        return dict(self.params)

    def key(self) -> str:
        return json.dumps({"op": self.op, "params": dict(self.params)}, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class StudySpec:
    path: str
    name: str
    base: hwconfigs.HwConfig
    sampler: str
    seed: int
    n_trials: int
    timeout: float | None
    candidate_timeout: float
    verify: str
    verify_top_k: int
    objectives: tuple[tuple[str, str], ...]      # (name, direction) in file order
    hardware: tuple[HwKnob, ...]
    schedule_sampler: str
    trials_per_layer: int
    exhaustive_up_to: int
    constraints: tuple[tuple[str, float], ...]   # (resource, max allowed)
    workloads: tuple[Workload, ...]
    raw: dict = dataclasses.field(compare=False, repr=False, default_factory=dict)
    runner: str = "count"                        # what measures the search's candidates (dse.runners)
    boards: tuple[str, ...] = ()                 # runner "board": the boards' "host:port"
    board_token_file: str | None = None          # runner "board": the shared token's file
    warnings: tuple[str, ...] = ()               # what the loader noticed but ran anyway

    @property
    def search_runner(self) -> str:
        """The runner of the search's candidates: ``verify = "all"`` makes a count search bit-exact."""
        return "full" if self.runner == "count" and self.verify == "all" else self.runner

    @property
    def verify_runner(self) -> str:
        """The runner ``verify`` re-runs the chosen schedules with: bit-exact, on the board if the study has one."""
        return "board" if self.runner == "board" else "full"

    @property
    def objective_names(self) -> list[str]:
        return [name for name, _ in self.objectives]

    @property
    def directions(self) -> list[str]:
        return [direction for _, direction in self.objectives]

    def hardware_grid_size(self) -> int:
        return math.prod(len(k.values) for k in self.hardware)

    def fingerprint(self) -> str:
        """What must not change when a study is resumed (the budget and the name may)."""
        keep = {k: v for k, v in self.raw.items() if k != "study"}
        study = {k: v for k, v in self.raw.get("study", {}).items()
                 if k not in RESUMABLE_KEYS}
        text = json.dumps({"study": study, **keep}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def hw_config(self, params: Mapping[str, int]) -> hwconfigs.HwConfig:
        """The hardware of one trial; raises ``hwconfigs.ConfigError`` when VTA cannot be built."""
        return self.base.replace(**dict(params)) if params else self.base


# ---- schema helpers -------------------------------------------------------------------------

def _check_keys(table: Mapping, valid, where: str) -> None:
    for key in table:
        if key not in valid:
            raise StudyError(f"unknown key {key!r} in {where}{_closest(key, valid)}; "
                             f"valid keys: {', '.join(valid)}")


def _show(value) -> str:
    """``repr(value)`` cut short (a fuzzed 400-digit integer or a 10 kB string stays readable)."""
    try:
        text = repr(value)
    except ValueError:   # an integer beyond Python's str-conversion digit limit
        return f"<integer of about {value.bit_length() * 30103 // 100000} digits>"
    return text if len(text) <= 80 else text[:77] + "..."


def _int(value, where: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StudyError(f"{where} must be an integer, got {_show(value)}")
    if low is not None and value < low:
        raise StudyError(f"{where} = {_show(value)} must be >= {low}")
    if high is not None and value > high:
        raise StudyError(f"{where} = {_show(value)} must be <= {high}")
    return value


def _number(value, where: str, positive: bool = True, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StudyError(f"{where} must be a number, got {_show(value)}")
    if high is not None and value > high:   # compared before float(): an int may exceed float's range
        raise StudyError(f"{where} = {_show(value)} must be <= {high:g}")
    if isinstance(value, float) and not math.isfinite(value):
        raise StudyError(f"{where} = {value} must be a finite number")
    if positive and value <= 0:
        raise StudyError(f"{where} = {_show(value)} must be > 0")
    return float(value)


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS or not value.isprintable():
        raise StudyError(f"{where} must be a non-empty printable string of at most {MAX_NAME_CHARS} "
                         f"characters, got {_show(value)}")
    return value


def _choice(value, where: str, valid) -> str:
    if not isinstance(value, str) or value not in valid:
        raise StudyError(f"{where} = {value!r} is not one of {', '.join(valid)}"
                         + (_closest(value, valid) if isinstance(value, str) else ""))
    return value


def _table(data: Mapping, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise StudyError(f"{where}.{key} must be a table, got {type(value).__name__}")
    return dict(value)


# ---- sections --------------------------------------------------------------------------------

STUDY_KEYS = ("name", "base", "sampler", "seed", "n_trials", "timeout", "candidate_timeout", "verify",
              "verify_top_k", "runner", "boards", "board_token_file")
# [study] keys a resumed study may change: its budget, its name, and where its boards are
RESUMABLE_KEYS = ("n_trials", "timeout", "name", "candidate_timeout", "boards", "board_token_file")

SCHEDULE_KEYS = ("sampler", "trials_per_layer", "exhaustive_up_to")
CONSTRAINT_KEYS = ("board", "margin", *RESOURCES)
TOP_KEYS = ("study", "objectives", "hardware", "schedule", "constraints", "workloads")


def _margins(value, where: str) -> dict[str, float]:
    """``margin = 0.1`` (every resource) or ``margin = {lut = 0.1, ...}``: the fraction of the
    board's budget to keep free for the rest of the design, in [0, 1)."""
    def fraction(v, at):
        f = _number(v, at, positive=False)
        if not 0 <= f < 1:
            raise StudyError(f"{at} = {v!r} must be a fraction of the budget in [0, 1)")
        return f

    if isinstance(value, Mapping):
        _check_keys(value, RESOURCES, where)
        return {k: fraction(value[k], f"{where}.{k}") if k in value else 0.0 for k in RESOURCES}
    return dict.fromkeys(RESOURCES, fraction(value, where))


def _board_address(value, where: str) -> str:
    """``host:port`` as the board client reads it (``dse.board.parse_board``)."""
    from .board import BoardError, parse_board

    try:
        parse_board(value)
    except BoardError:
        raise StudyError(f"{where} = {_show(value)} is not a board address \"host:port\" "
                         f"(e.g. \"192.168.2.99:9091\", \"[::1]:9091\"; port 1 to 65535)") from None
    return value


def _runner(study: Mapping, src: str, folder: Path) -> tuple[str, tuple[str, ...], str | None, tuple[str, ...]]:
    """(runner, boards, token file, warnings) of the [study] table: a board runner needs its boards
    and an existing token file (relative to the study file); either given to another runner is
    ignored with a warning naming it."""
    where = f"{src} [study]"
    runner = _choice(study.get("runner", "count"), f"{where} runner", RUNNERS)
    raw_boards = study.get("boards", [])
    if not isinstance(raw_boards, list):
        raise StudyError(f"{where} boards must be a list of \"host:port\" strings, got {_show(raw_boards)}")
    boards = tuple(_board_address(b, f"{where} boards[{i}]") for i, b in enumerate(raw_boards))
    repeated = sorted({b for b in boards if boards.count(b) > 1})
    if repeated:
        raise StudyError(f"{where} boards: repeated {', '.join(repeated)} (one candidate runs per board at a time)")
    token_file = study.get("board_token_file")
    if token_file is not None:
        if not isinstance(token_file, str) or not token_file or "\0" in token_file or len(token_file) > 4096:
            raise StudyError(f"{where} board_token_file must be a file name, got {_show(token_file)}")
        given = Path(token_file).expanduser()          # "~/.config/vta-dse/board.token" as docs/board.md has it
        token_file = str(given if given.is_absolute() else folder / given)
    if runner != "board":
        ignored = [k for k in ("boards", "board_token_file") if k in study]
        notes = tuple(f"{where} {k} is ignored: runner = {runner!r} measures on this machine "
                      f"(runner = \"board\" uses boards)" for k in ignored)
        return runner, (), None, notes
    if not boards:
        raise StudyError(f"{where} runner = 'board' needs boards = [\"host:port\", ...], the boards to measure on")
    if token_file is None:
        raise StudyError(f"{where} runner = 'board' needs board_token_file, the file holding the boards' shared "
                         f"token (`vta-dse board serve --token-file`)")
    try:
        found = Path(token_file).is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise StudyError(f"{where} board_token_file = {_show(token_file)}: no such file")
    return runner, boards, token_file, ()


def _hardware(table: Mapping, src: str) -> tuple[HwKnob, ...]:
    knobs = []
    for key, spec in table.items():
        where = f"{src} [hardware] {key}"
        if key not in LOG_KEYS:
            raise StudyError(f"unknown key {key!r} in {src} [hardware]{_closest(key, LOG_KEYS)}; "
                             f"hardware knobs are the LOG_* keys: {', '.join(LOG_KEYS)}")
        _, low_ok, high_ok = hwconfigs.FIELDS[key]
        if isinstance(spec, list):
            if not spec:
                raise StudyError(f"{where}: the list of values is empty")
            values = [_int(v, f"{where} value", low_ok, high_ok) for v in spec]
            if len(set(values)) != len(values):
                raise StudyError(f"{where}: repeated values in {values}")
            knobs.append(HwKnob(key, tuple(sorted(values)), False))
        elif isinstance(spec, Mapping):
            _check_keys(spec, ("low", "high"), where)
            if "low" not in spec or "high" not in spec:
                raise StudyError(f"{where}: a range needs both 'low' and 'high'")
            low = _int(spec["low"], f"{where}.low", low_ok, high_ok)
            high = _int(spec["high"], f"{where}.high", low_ok, high_ok)
            if low > high:
                raise StudyError(f"{where}: empty range, low = {low} > high = {high}")
            knobs.append(HwKnob(key, tuple(range(low, high + 1)), True))
        else:
            raise StudyError(f"{where} must be a list of values or a {{low, high}} range, got {_show(spec)}")
    return tuple(knobs)


# TARGETs that are simulators, not boards: a base preset on one of them may be built for any board.
SIMULATED_TARGETS = ("sim", "tsim")


def _on_board(base: hwconfigs.HwConfig, constraints, src: str) -> hwconfigs.HwConfig:
    """The base hardware built for ``[constraints] board``: its TARGET (which also sets the clock
    and bus width the latencies are modelled at) becomes the board, so every trial and
    ``best_config.json`` name it. A base preset already naming another board is a contradiction."""
    board = constraints.get("board") if isinstance(constraints, Mapping) else None
    if not isinstance(board, str) or board not in hwconfigs.FPGA_TARGETS or board in SIMULATED_TARGETS:
        return base          # no board, or a bad value: refused with the rest of [constraints]
    if base.TARGET not in SIMULATED_TARGETS and base.TARGET != board:
        raise StudyError(f"{src}: [constraints] board = {board!r} but [study] base targets "
                         f"TARGET = {base.TARGET!r}; use a base for {board!r} (or a simulator base such as "
                         f"'default') or drop the board")
    try:
        return base.replace(TARGET=board)
    except hwconfigs.ConfigError as exc:
        raise StudyError(f"{src}: [constraints] board = {board!r}: the base cannot be built for it: {exc}") from None


def _check_space_has_valid_point(base: hwconfigs.HwConfig, knobs, src: str) -> None:
    size = math.prod(len(k.values) for k in knobs)
    if not knobs or size > ENUMERATE_LIMIT:
        return
    first_error = None
    for values in itertools.product(*(k.values for k in knobs)):
        try:
            base.replace(**{k.name: v for k, v in zip(knobs, values)})
            return
        except hwconfigs.ConfigError as exc:
            first_error = first_error or exc
    raise StudyError(f"{src} [hardware]: none of the {size} configurations of this space can be built "
                     f"on the base preset; for example: {first_error}")


def _relative_to(path: str, src: str) -> str:
    """A workload's ``path`` names a file relative to the study file's folder."""
    try:
        return path if not path or Path(path).is_absolute() else str(Path(src).parent / path)
    except (OSError, ValueError):   # a name the file system refuses: the reader says so
        return path


def _workloads(items, src: str, ops: Mapping[str, Mapping[str, Any]]) -> tuple[Workload, ...]:
    if not isinstance(items, list) or not items:
        raise StudyError(f"{src}: [[workloads]] is missing; a study needs at least one workload "
                         f"(op one of {', '.join(ops)})")
    out = []
    for index, item in enumerate(items):
        where = f"{src} [[workloads]] #{index + 1}"
        if not isinstance(item, Mapping):
            raise StudyError(f"{where} must be a table")
        if "op" not in item:
            raise StudyError(f"{where}: missing key 'op' (one of {', '.join(ops)})")
        op = _choice(item["op"], f"{where} op", list(ops))
        schema = ops[op]
        _check_keys(item, ("op", "name", "count", *schema), where)
        params = {}
        for key, default in schema.items():
            if key in item:
                value = item[key]
                if isinstance(default, list) or (default is REQUIRED and isinstance(value, list)):
                    if not isinstance(value, list):
                        raise StudyError(f"{where} {key} must be a list, got {_show(value)}")
                    params[key] = tuple(value)
                elif isinstance(default, bool):
                    if not isinstance(value, bool):
                        raise StudyError(f"{where} {key} must be true or false, got {_show(value)}")
                    params[key] = value
                elif isinstance(default, str) or default is None or (default is REQUIRED and isinstance(value, str)):
                    if not isinstance(value, str):
                        raise StudyError(f"{where} {key} must be a string, got {_show(value)}")
                    params[key] = _relative_to(value, src) if key == "path" else value
                else:   # an integer parameter (its default is one, or it is required)
                    params[key] = _int(value, f"{where} {key}", 0)
            elif default is REQUIRED:
                raise StudyError(f"{where} ({op}): missing key {key!r}")
            elif default is not None:
                params[key] = tuple(default) if isinstance(default, list) else default
        count = _int(item.get("count", 1), f"{where} count", 1, MAX_TRIALS)
        name = _name(item.get("name", f"{op}{index + 1}"), f"{where} name")
        out.append(Workload(name, op, tuple(sorted(params.items())), count))
    names = [w.name for w in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise StudyError(f"{src}: workload names must be unique, repeated: {', '.join(sorted(dup))}")
    return tuple(out)


def parse_study(data: Mapping, path: str, ops: Mapping[str, Mapping[str, Any]],
                trials: int | None = None) -> StudySpec:
    """Validate a parsed TOML document against the schema (``ops``: the evaluator's operators
    and their parameters, ``REQUIRED`` or a default)."""
    src = str(path)
    _check_keys(data, TOP_KEYS, src)
    study = _table(data, "study", src)
    _check_keys(study, STUDY_KEYS, f"{src} [study]")
    base_spec = study.get("base", "default")
    if not isinstance(base_spec, str) or not base_spec or len(base_spec) > 4096 or "\0" in base_spec:
        raise StudyError(f"{src} [study] base = {_show(base_spec)}: expected a preset name "
                         f"({', '.join(hwconfigs.preset_names())}) or a JSON config file")
    try:
        if base_spec.endswith(".json") and not Path(base_spec).is_absolute():
            candidate = Path(path).parent / base_spec
            try:
                base_spec = str(candidate) if candidate.is_file() else base_spec
            except (OSError, ValueError):   # a name the file system refuses (too long...)
                pass
        base = hwconfigs.resolve_config(base_spec)
    except hwconfigs.ConfigError as exc:
        raise StudyError(f"{src} [study] base = {_show(base_spec)}: {exc}") from None
    base = _on_board(base, data.get("constraints"), src)
    sampler = _choice(study.get("sampler", "tpe"), f"{src} [study] sampler", SAMPLERS)
    seed = _int(study.get("seed", 0), f"{src} [study] seed", 0, MAX_SEED)
    n_trials = _int(study.get("n_trials", 20), f"{src} [study] n_trials", 1, MAX_TRIALS)
    if trials is not None:
        n_trials = _int(trials, "--trials", 1, MAX_TRIALS)
    timeout = (_number(study["timeout"], f"{src} [study] timeout", high=MAX_TIMEOUT_S)
               if "timeout" in study else None)
    candidate_timeout = _number(study.get("candidate_timeout", 300), f"{src} [study] candidate_timeout",
                                high=MAX_TIMEOUT_S)
    verify = _choice(study.get("verify", "top"), f"{src} [study] verify", VERIFY)
    verify_top_k = _int(study.get("verify_top_k", 3), f"{src} [study] verify_top_k", 1, MAX_TRIALS)

    objectives_table = _table(data, "objectives", src) or {"latency": "minimize"}
    _check_keys(objectives_table, OBJECTIVES, f"{src} [objectives]")
    objectives = tuple((k, _choice(v, f"{src} [objectives] {k}", DIRECTIONS))
                       for k, v in objectives_table.items())

    hardware = _hardware(_table(data, "hardware", src), src)
    _check_space_has_valid_point(base, hardware, src)

    schedule = _table(data, "schedule", src)
    _check_keys(schedule, SCHEDULE_KEYS, f"{src} [schedule]")
    schedule_sampler = _choice(schedule.get("sampler", "tpe"), f"{src} [schedule] sampler", INNER_SAMPLERS)
    trials_per_layer = _int(schedule.get("trials_per_layer", 16), f"{src} [schedule] trials_per_layer", 1, MAX_TRIALS)
    exhaustive_up_to = _int(schedule.get("exhaustive_up_to", EXHAUSTIVE_UP_TO), f"{src} [schedule] exhaustive_up_to",
                            0, MAX_EXHAUSTIVE)

    constraints_table = _table(data, "constraints", src)
    _check_keys(constraints_table, CONSTRAINT_KEYS, f"{src} [constraints]")
    limits: dict[str, float] = {}
    if "board" in constraints_table:
        board = constraints_table["board"]
        targets = list(hwconfigs.FPGA_TARGETS)
        _choice(board, f"{src} [constraints] board", targets)
        cap = hwconfigs.CAPACITIES[hwconfigs.FPGA_TARGETS[board].part]
        margin = _margins(constraints_table.get("margin", 0.0), f"{src} [constraints] margin")
        limits.update({k: getattr(cap, k) * (1 - margin[k]) for k in RESOURCES})
    elif "margin" in constraints_table:
        raise StudyError(f"{src} [constraints] margin is a fraction of a board's budget: set "
                         f"[constraints] board too (one of {', '.join(hwconfigs.FPGA_TARGETS)})")
    for key in RESOURCES:
        if key in constraints_table:
            limits[key] = _number(constraints_table[key], f"{src} [constraints] {key}", high=1e12)
    constraints = tuple((k, limits[k]) for k in RESOURCES if k in limits)

    if sampler == "grid":
        if not hardware:
            raise StudyError(f"{src} [study] sampler = 'grid' needs at least one [hardware] knob")
        n_trials = min(n_trials, math.prod(len(k.values) for k in hardware))
    if sampler == "cmaes" and len(objectives) > 1:
        raise StudyError(f"{src} [study] sampler = 'cmaes' optimizes one objective; [objectives] has "
                         f"{len(objectives)} ({', '.join(k for k, _ in objectives)}); use 'tpe' or 'nsga2'")
    if sampler == "gp":
        try:
            import torch  # noqa: F401  (Optuna's GPSampler is built on it)
        except ImportError:
            raise StudyError(f"{src} [study] sampler = 'gp': Optuna's GPSampler needs PyTorch, which is "
                             f"not installed (pip install torch), or choose 'tpe'") from None

    runner, boards, token_file, notes = _runner(study, src, Path(path).parent)
    workloads = _workloads(data.get("workloads"), src, ops)
    name = _name(study.get("name", Path(path).stem), f"{src} [study] name")
    return StudySpec(path=src, name=name, base=base, sampler=sampler, seed=seed, n_trials=n_trials,
                     timeout=timeout, candidate_timeout=candidate_timeout, verify=verify,
                     verify_top_k=verify_top_k, objectives=objectives, hardware=hardware,
                     schedule_sampler=schedule_sampler, trials_per_layer=trials_per_layer,
                     exhaustive_up_to=exhaustive_up_to,
                     constraints=constraints, workloads=workloads, raw=json.loads(json.dumps(data, default=str)),
                     runner=runner, boards=boards, board_token_file=token_file, warnings=notes)


def load_study(path, ops: Mapping[str, Mapping[str, Any]], trials: int | None = None,
               resolve=None) -> StudySpec:
    """Read and validate a study file; every problem raises :class:`StudyError`.

    ``resolve`` (the evaluator's ``resolve``) is called on the workloads, so that a value the
    schema accepts but the operator library refuses (``batch = 0``, a kernel larger than the
    input) is refused here too, naming the workload."""
    try:
        path = Path(path)
        raw = path.read_bytes()
    except (OSError, ValueError, TypeError) as exc:
        raise StudyError(f"cannot read study file {_show(str(path))}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    if len(raw) > MAX_STUDY_BYTES:
        raise StudyError(f"{path}: {len(raw)} bytes is too large for a study file (at most {MAX_STUDY_BYTES})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise StudyError(f"{path}: not UTF-8 text: byte {raw[exc.start:exc.start + 1]!r} at line {line} "
                         f"(TOML files are UTF-8)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: malformed TOML: {exc}") from None
    except (RecursionError, ValueError) as exc:   # nesting too deep, an integer beyond the digit limit
        raise StudyError(f"{path}: malformed TOML: {type(exc).__name__}: {str(exc)[:200]}") from None
    spec = parse_study(data, str(path), ops, trials=trials)
    if resolve is not None:
        check_workloads(spec, resolve)
    return spec


def check_workloads(spec: StudySpec, resolve) -> None:
    """Resolve the workloads with the evaluator; what it refuses is a StudyError naming them."""
    for index, workload in enumerate(spec.workloads):
        where = f"{spec.path} [[workloads]] #{index + 1} ({workload.name!r}, {workload.op})"
        try:
            resolve([workload])
        except StudyError as exc:
            raise StudyError(f"{where}: {exc}") from None
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as exc:
            # The operator library's own error (compiler.CompileError is a ValueError).
            raise StudyError(f"{where}: {exc}") from None


def check_out_dir(out) -> Path:
    """The output folder of a run: an existing folder or one that can be created; raises
    StudyError for a file, a path under a file, or a folder that cannot be created or written."""
    out = Path(out)
    try:
        if out.exists() and not out.is_dir():
            raise StudyError(f"--out {_show(str(out))} is a file, not a folder")
        probe = out
        while not probe.exists():
            parent = probe.parent
            if parent == probe:
                break
            probe = parent
        if not probe.is_dir():
            raise StudyError(f"--out {_show(str(out))}: {str(probe)!r} is a file, a folder cannot be created under it")
        import os
        if not os.access(probe, os.W_OK | os.X_OK):
            raise StudyError(f"--out {_show(str(out))}: folder {str(probe)!r} is not writable")
    except (OSError, ValueError) as exc:   # a name too long, a NUL byte
        raise StudyError(f"--out {_show(str(out))}: {getattr(exc, 'strerror', None) or exc}") from None
    return out

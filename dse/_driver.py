"""The search driver: an Optuna study over hardware whose every trial tunes each layer's schedule.

One outer Optuna trial = one hardware configuration. Its value is the aggregate over the study's
workloads (Σ count × latency of the layer's best schedule) and/or its resource figures; the
schedules come from one inner search per layer (``dse._inner``). Each layer search of a trial is
one Ray job (``dse._layer_job``) that streams back a row per candidate; the loop is asynchronous:
whenever a job ends, the freed slot is refilled at once from the oldest open hardware trial,
opening a new one (``study.ask``) when the open ones have nothing left to submit. A job whose
worker dies is resubmitted and replays what the driver already holds, so no row is lost or doubled.

Resuming: the study's storage holds everything finished, each trial's rows and summary with it
(``dse._results``). A trial left RUNNING by a dead driver (this host: its process is gone;
elsewhere: no heartbeat for ``GRACE_S``) is failed and its hardware enqueued again, so the budget
of COMPLETE trials is met without a trial counted twice. Drivers sharing a study stop together:
one whose budget is spoken for waits for the other drivers' open trials (and takes over any that
fails), so all of them write the same tables and choose the same configuration.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import socket
import time
import warnings
from pathlib import Path

import numpy as np
import optuna

import hwconfigs

from . import _outcome, _results, _storage, _tables
from ._columns import COUNTERS, RESOURCES, TIMING, objective_attr
from ._executor import RayPool
from ._inner import is_exhaustive
from ._table_store import TableStore
from ._identity import shared_cache_dir
from ._layer_job import LayerJob, knob_text, latency_of
from ._progress import Progress
from ._protocol import make_task, measurement
from ._records import CACHEABLE, CandidateCache
from ._samplers import distributions, make_sampler, static_check
from ._study import ENUMERATE_LIMIT, StudyError, StudySpec

DRIVER_ATTR = "dse:driver"
PREFETCH = 1          # jobs queued beyond the CPUs by default
LEGACY_JOURNAL = "rows.jsonl"   # where runs of vta-dse before dse._results kept their rows
RESULT_BLIND = ("grid",)   # samplers whose proposals do not depend on the values they are told
WAIT_S = 1.0          # a driver waiting for other drivers' trials looks again this often
RECOVER_EVERY_S = 10.0  # ... and fails those of dead drivers (see dse._storage.GRACE_S) this often
FINGERPRINT_ATTR = "dse:fingerprint"
CONSTRAINT_NAMES_ATTR = "dse:constraint_names"


def constraint_names(spec: StudySpec) -> list[str]:
    """The names of a trial's constraint values, in the order they are stored."""
    return _outcome.constraint_names([key for key, _ in spec.constraints])


# The on-chip buffer sizes: a schedule's counters and cycles do not depend on them (only on the
# layer, the geometry, the widths, the uop buffer and the timing parameters); they decide only which
# schedules fit. tests/dse/test_tables.py holds the invariance.
BUFFER_KEYS = ("LOG_INP_BUFF_SIZE", "LOG_WGT_BUFF_SIZE", "LOG_ACC_BUFF_SIZE")


def table_hws(spec: StudySpec, hw: hwconfigs.HwConfig) -> list[hwconfigs.HwConfig]:
    """The hardware a schedule table of ``hw``'s geometry is measured on: the buffer-size
    combinations of the study's space that can be built and that no other buildable one exceeds
    in every buffer (ISA field widths keep the largest of each from being built together),
    largest first. A schedule that fits any point of the geometry fits one of these (fitting is
    monotone in every buffer size); the table measures it on the first it fits."""
    knobs = sorted((k for k in spec.hardware if k.name in BUFFER_KEYS), key=lambda k: BUFFER_KEYS.index(k.name))
    return list(_table_hws(spec.base, tuple((k.name, k.values) for k in knobs), hw))


@functools.lru_cache(maxsize=256)
def _table_hws(base, buffer_knobs: tuple, hw) -> tuple:
    if not buffer_knobs:
        return (hw,)
    names = [name for name, _ in buffer_knobs]
    legal = []
    for values in itertools.product(*(values for _, values in buffer_knobs)):
        try:
            legal.append((values, hw.replace(**dict(zip(names, values)))))
        except hwconfigs.ConfigError:
            continue
    if not legal:
        return (hw,)
    maximal = [(v, cfg) for v, cfg in legal
               if not any(o != v and all(a >= b for a, b in zip(o, v)) for o, _ in legal)]
    maximal.sort(key=lambda item: (-sum(item[0]), [-x for x in item[0]]))
    return tuple(cfg for _, cfg in maximal)


def smallest_hw(spec: StudySpec, hw: hwconfigs.HwConfig) -> hwconfigs.HwConfig | None:
    """The buildable buffer combination of ``hw``'s geometry with the least on-chip memory in the
    study's space (what a table's refinement also aims at); None without buffer knobs."""
    knobs = sorted((k for k in spec.hardware if k.name in BUFFER_KEYS), key=lambda k: BUFFER_KEYS.index(k.name))
    if not knobs:
        return None
    for values in sorted(itertools.product(*(k.values for k in knobs)), key=lambda v: (sum(v), v)):
        try:
            return hw.replace(**dict(zip((k.name for k in knobs), values)))
        except hwconfigs.ConfigError:
            continue
    return None


def table_hw(spec: StudySpec, hw: hwconfigs.HwConfig) -> hwconfigs.HwConfig:
    """The first (largest) hardware of ``table_hws``: the one a table's search is keyed by."""
    return table_hws(spec, hw)[0]


def table_seed(spec: StudySpec, hw: hwconfigs.HwConfig, workload) -> int:
    """The schedule search seed of one table: the study seed, the table's hardware and the layer,
    never the trial or the worker that happens to build it."""
    text = json.dumps([spec.seed, sorted(hw.to_dict().items()), workload.key()], default=str)
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % (2 ** 31)


def first_fitting(ranked: list, demand, hw: hwconfigs.HwConfig, static_check):
    """(index, knobs, latency) of the first of ``ranked`` ((latency, index, knobs), fastest first)
    that ``static_check`` admits on ``hw``, or None. ``demand`` (bytes of the inp, wgt and acc
    buffers each needs, or None) passes over those larger than ``hw``'s buffers unchecked: the
    static check refuses them anyway, and a table may hold tens of thousands."""
    if demand is None:
        order = range(len(ranked))
    else:
        capacity = np.array([2 ** hw.to_dict()[key] for key in BUFFER_KEYS])
        order = np.flatnonzero((demand <= capacity).all(axis=1))
    for j in order:
        latency, index, knobs = ranked[j]
        if static_check(knobs) is None:
            return index, knobs, latency
    return None


FILL_ATTR = "dse:exact_fill"      # a trial scored from complete tables, not proposed by the sampler


@dataclasses.dataclass(frozen=True)
class _Point:
    """A hardware point scored without an Optuna trial of its own yet (an exact fill)."""
    number: int
    params: dict


@dataclasses.dataclass
class RunOptions:
    out: Path
    workers: int | None = None
    ray_address: str | None = None
    storage: str | None = None
    progress: bool = True
    prefetch: int | None = None       # extra jobs queued beyond the CPUs (default: PREFETCH)
    runtime_env: dict | None = None
    max_attempts: int = 2             # a job whose Ray worker dies is submitted this often in all
    # candidates in a child process of each worker (dse._isolation); False: in the worker itself,
    # where a crash costs the worker and a candidate stuck in native code is never stopped
    isolate: bool = True


@dataclasses.dataclass
class RunSummary:
    out: Path
    study_name: str
    storage: str
    complete: int
    feasible: int
    best: dict | None
    candidates: int
    cache_hits: int
    elapsed_s: float
    interrupted: bool = False
    # Where the time went (seconds): ray_start (joining/starting Ray, shipping the evaluator),
    # search (first submission to last result of the search), search_cpu (the driver process's
    # CPU time in that span), verify, write (tables and report); candidates: evaluated in the search.
    timing: dict = dataclasses.field(default_factory=dict)
    filled: int = 0       # of the complete trials, those scored exactly from complete tables


# ---- driver identity (to recognise trials orphaned by a killed driver) -------------------------

def _proc_start(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _identity() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _proc_start(os.getpid())}


def _driver_is_dead(owner) -> bool:
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    start = _proc_start(int(owner.get("pid", -1)))
    return start is None or start != owner.get("start")


# ---- the hardware trial -------------------------------------------------------------------------

class _Layer:
    """One layer's schedule search within a hardware trial, or one shard of it (a search too large
    for one worker when there are more workers than searches): waiting, running as a job, or done."""

    def __init__(self, workload):
        self.workload = workload
        self.job: LayerJob | None = None      # what to submit (None: nothing to search)
        self.group: str | None = None         # its cache group (the driver's key, set on submission)
        self.running = False
        self.done = False
        self.error = ""
        self.known: dict[int, float | None] = {}          # candidate -> latency told (None: failed)
        self.results: dict[int, tuple[dict, float | None]] = {}
        self.lost = 0                         # Ray workers lost running this layer's job
        self.table_group: str | None = None   # the schedule table answering this layer
        self.from_table = False               # answered by a table another trial built

    @property
    def waiting(self) -> bool:
        return self.job is not None and not self.running and not self.done


class _HwTrial:
    def __init__(self, trial, spec: StudySpec, workloads):
        self.trial = trial
        self.number = trial.number
        self.params = dict(trial.params)
        self.hw: hwconfigs.HwConfig | None = None
        self.reason = ""                      # why the hardware is infeasible
        self.resources: dict = {}
        self.violations: list[float] = []
        self.layers = [_Layer(w) for w in workloads]
        self.rows: list[dict] = []
        self.hw_row = {**spec.base.to_dict(), **self.params}

    @property
    def done(self) -> bool:
        return all(layer.job is None or layer.done for layer in self.layers)

    def searches(self) -> list[tuple[object, list[_Layer]]]:
        """(workload, its shards) per workload, in the study's order."""
        parts: dict[str, list[_Layer]] = {}
        for layer in self.layers:
            parts.setdefault(layer.workload.name, []).append(layer)
        return [(group[0].workload, group) for group in parts.values()]


class Driver:
    def __init__(self, spec: StudySpec, evaluator, options: RunOptions):
        self.spec = spec
        self.evaluator = study_evaluator(evaluator, spec)
        self.opt = options
        self.out = Path(options.out)
        self.workloads = list(evaluator.resolve(spec.workloads))
        names = [w.name for w in self.workloads]
        if len(set(names)) != len(names):
            raise StudyError(f"{spec.path}: two workloads resolve to the same layer name: {names}")
        self.mode = spec.search_runner
        self.identity = _identity()
        self.tables: dict[str, tuple[dict, str]] = {}   # table group -> (results, space error)
        self.table_rows: dict[str, dict] = {}          # table group -> candidate -> measurement
        self.unpublished: list[str] = []               # complete tables not yet stored with the study
        self.rankings: dict[str, tuple] = {}           # table group -> (size, fastest first, buffer bytes)
        self.filled_geometries: set = set()            # geometries whose every buffer point is a trial
        self.filled: set[int] = set()                  # trial numbers of the exact fills (not the budget's)
        self.feasible_points: frozenset | None = None   # the space's buildable, in-budget points (enumerable)

    # ---- study setup ---------------------------------------------------------------------
    def _open_study(self):
        url = self.opt.storage or _storage.default_url(self.out)
        self.storage_url = url
        storage = _storage.open_storage(url)
        directions = self.spec.directions
        try:
            study = optuna.create_study(study_name=self.spec.name, storage=storage,
                                        sampler=make_sampler(self.spec, self.evaluator, self.workloads),
                                        directions=directions, load_if_exists=True)
        except Exception as exc:
            raise StudyError(f"cannot create or load study {self.spec.name!r} in {url}: {exc}") from None
        self.trials = _storage.TrialStore(study, storage)
        if [d.name.lower() for d in study.directions] != directions:
            raise StudyError(f"study {self.spec.name!r} in the storage has directions "
                             f"{[d.name.lower() for d in study.directions]}, the study file asks for {directions}; "
                             f"use another --out/--storage or rename the study")
        fingerprint = self.spec.fingerprint()
        stored = study.user_attrs.get(FINGERPRINT_ATTR)
        if stored is None:
            study.set_user_attr(FINGERPRINT_ATTR, fingerprint)
            study.set_user_attr("dse:objectives", self.spec.objective_names)
            study.set_user_attr("dse:constraints", [k for k, _ in self.spec.constraints])
            study.set_user_attr(CONSTRAINT_NAMES_ATTR, constraint_names(self.spec))
        self.table_store = TableStore(storage, study.study_name)
        if study.metric_names is None:        # what optuna-dashboard labels the objectives with
            study.set_metric_names([objective_attr(name) for name in self.spec.objective_names])
        elif stored != fingerprint:
            raise StudyError(f"study {self.spec.name!r} in {url} was started from a different study file "
                             f"(search space, objectives or workloads changed); resume it with the same file, "
                             f"or choose another --out or [study] name")
        return study

    def _recover_orphans(self, study) -> int:
        """Fail the RUNNING trials of dead drivers and enqueue their hardware again."""
        return self.trials.recover_orphans(DRIVER_ATTR, _driver_is_dead)

    def _count(self, study, *states) -> int:
        counts = self.trials.counts()
        return sum(counts.get(optuna.trial.TrialState[s], 0) for s in states)

    def _complete_count(self, study) -> int:
        return self._count(study, "COMPLETE")

    # ---- opening a hardware trial --------------------------------------------------------
    def _open_trial(self, study) -> _HwTrial:
        return self._new_trial(self.trials.ask(self.dists, DRIVER_ATTR, self.identity))

    def _new_trial(self, trial) -> _HwTrial:
        """The hardware trial of ``trial`` (anything with ``number`` and ``params``): statically
        checked, each layer answered by its schedule table or given the job that builds it."""
        ht = _HwTrial(trial, self.spec, self.workloads)
        check = static_check(self.spec, ht.params)
        ht.hw, ht.resources, ht.violations = check.hw, check.resources, check.overruns
        if check.reason:
            ht.reason = check.reason
            return ht
        # One schedule table per (layer, table hardware), shared by every trial of the geometry;
        # one job builds it, in one worker, so its search never depends on timing or workers.
        hw, *fit_hws = table_hws(self.spec, ht.hw)
        small = smallest_hw(self.spec, ht.hw)
        seeds = getattr(self.evaluator, "seed_knobs", None)
        ht.layers = []
        for workload in self.workloads:
            shards = self._shards_per_search(workload, hw)
            for shard in range(shards):
                layer = _Layer(workload)
                layer.job = LayerJob(hw, workload, self.mode, self.spec.seed, budget=self.spec.trials_per_layer,
                                     sampler=self.spec.schedule_sampler,
                                     exhaustive_up_to=self.spec.exhaustive_up_to,
                                     search_seed=table_seed(self.spec, hw, workload),
                                     seeds=self._seeds(seeds, workload, hw), shard=shard, shards=shards,
                                     fit_hws=fit_hws, refine_hws=[small] if small is not None else [])
                layer.table_group = self._group(layer)
                ht.layers.append(layer)
                if layer.table_group in self.tables:
                    self._answer_from_table(ht, layer)
        return ht

    @staticmethod
    def _seeds(seed_knobs, workload, hw) -> list:
        if seed_knobs is None:
            return []
        try:
            return list(seed_knobs(workload, hw))
        except Exception:        # a layer the hardware cannot run: its search reports why
            return []

    def _answer_from_table(self, ht: _HwTrial, layer: _Layer) -> None:
        """A layer whose schedule table is complete: its results are the table's, no job."""
        results, error = self.tables[layer.table_group]
        layer.results = dict(results)
        layer.error = error
        layer.from_table = True
        layer.done = True

    def _shards_per_search(self, workload, hw) -> int:
        """Jobs per schedule table: 1, unless the search is exhaustive (its union over shards is
        the same whatever their number: a sampled search split would depend on the workers) and
        the study has fewer layers than there are CPUs, e.g. one layer tuned on one fixed hardware
        point. Never depends on timing; one CPU never shards."""
        capacity = self.pool.capacity
        if capacity <= len(self.workloads):
            return 1
        try:
            size = math.prod(len(v) for v in self.evaluator.knob_space(workload, hw).values())
        except Exception:
            return 1
        if not is_exhaustive(size, self.spec.trials_per_layer, self.spec.schedule_sampler, self.spec.exhaustive_up_to):
            return 1
        return max(1, capacity // len(self.workloads))

    # ---- rows ----------------------------------------------------------------------------
    def _row(self, ht: _HwTrial, layer: _Layer, index, knobs, m: dict, *, mode, attempt=1, cached=False):
        w = layer.workload
        row = {"trial": ht.number, "workload": w.name, "layer_count": w.count, "candidate": index,
               "attempt": attempt, "mode": mode, **{k: ht.hw_row.get(k) for k in ht.hw_row},
               "knobs": dict(knobs or {}), **m, **{k: ht.resources.get(k) for k in RESOURCES},
               "chosen": False, "cached": cached, "verified": None}
        ht.rows.append(row)
        return row

    # ---- the search loop -------------------------------------------------------------------
    def run(self) -> RunSummary:
        t0 = time.monotonic()
        self.out.mkdir(parents=True, exist_ok=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Heartbeats are recorded by this loop (ask/tell), which Optuna warns is unusual.
        warnings.filterwarnings("ignore", message=".*[Hh]eartbeat.*")
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study = self._open_study()
        self.study = study
        self.dists = distributions(self.spec)
        self._enqueue_base(study)
        recovered = self._recover_orphans(study)
        shared = shared_cache_dir() if getattr(self.evaluator, "shares_cache", False) else None
        self.cache = CandidateCache(self.out / "cache.jsonl", self.evaluator.name, shared)
        self.results = _results.StudyResults(study, self.trials.storage, journal=self.out / LEGACY_JOURNAL)
        _tables.write_study_json(self.out, self.spec, self.storage_url, self.workloads)
        self.best_value = None
        for number, record in self.results.load()[0].items():
            self._note_best(record["summary"])
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if t.user_attrs.get(FILL_ATTR):
                self.filled.add(t.number)
        done = self._complete_count(study) - len(self.filled)
        self.progress = Progress(self.spec.n_trials, done, enabled=self.opt.progress)
        if recovered and self.opt.progress:
            self.progress.stream.write(f"resuming: {recovered} trial(s) left running by a dead driver failed "
                                       f"and enqueued again\n")
        workers = self.opt.workers
        # One job queued behind each busy CPU, so a worker never waits for the driver's round
        # trip. With one worker the messages are taken strictly in submission order, so what the
        # samplers see (and the tables) do not depend on timing.
        prefetch = self.opt.prefetch if self.opt.prefetch is not None else PREFETCH
        interrupted = False
        self.evaluated = 0
        t_ray = time.monotonic()
        pool = RayPool(self.evaluator, workers=workers, address=self.opt.ray_address,
                       timeout=self.spec.candidate_timeout, prefetch=prefetch, runtime_env=self.opt.runtime_env,
                       in_order=workers == 1, isolate=self.opt.isolate)
        self.pool = pool
        timing = {"ray_start": time.monotonic() - t_ray}
        try:
            cpu = time.process_time()
            self._search(study, t0)
            timing["search_cpu"] = time.process_time() - cpu
            if pool.first_submit is not None:
                timing["search"] = pool.last_result - pool.first_submit
            timing["candidates"] = self.evaluated
            t_verify = time.monotonic()
            self._verify(study)
            timing["verify"] = time.monotonic() - t_verify
            t_base = time.monotonic()
            self._baseline()
            timing["baseline"] = time.monotonic() - t_base
        except KeyboardInterrupt:
            interrupted = True
            self._abandon_open_trials(study)
        except StudyError:            # no candidate can be evaluated: the open trials are given back
            self._abandon_open_trials(study)
            raise
        finally:
            pool.shutdown()
            self.progress.close()
        t_write = time.monotonic()
        summary = _tables.write_outputs(self.out, self.spec, study, self.results, self.storage_url,
                                        workloads=self.workloads)
        timing["write"] = time.monotonic() - t_write
        return RunSummary(self.out, self.spec.name, self.storage_url, summary["complete"], summary["feasible"],
                          summary["best"], self.evaluated, self.cache.hits, time.monotonic() - t0, interrupted,
                          timing, len(self.filled))

    def _abandon_open_trials(self, study) -> None:
        try:                          # trials with every result in are told, not abandoned
            self._finish_pending(study)
            self._publish_tables()
        except Exception:
            pass
        for ht in getattr(self, "active", []):
            try:
                if self.trials.finish(ht.trial, _outcome.abandoned(), {}):
                    _storage.ask_again(study, ht.trial)
            except Exception:
                pass
        self.active = []

    def _search(self, study, t0: float) -> None:
        pool = self.pool
        self.active: list[_HwTrial] = []
        self.finishing: list[_HwTrial] = []     # every result in; the storage not yet told
        self.running_groups: dict[str, tuple] = {}   # cache group -> ((trial, layer) searching it, jobs in flight)
        last_beat = 0.0
        self.last_recovery = time.monotonic()
        while True:
            # Workers first: refill the freed slots (a trial is told before the next is asked),
            # then tell the other finished trials (tens of ms of storage work each) while they run.
            self._fill_slots(study, t0)
            self._finish_pending(study)
            self._publish_tables()
            if not self.active and not self.finishing and pool.in_flight() == 0:
                if not self._others_open(study, t0):
                    break
                continue
            for event in pool.wait(timeout=0.5):
                self._on_event(study, event)
            now = time.monotonic()
            if now - last_beat > _storage.HEARTBEAT_S / 2:
                for ht in self.active:
                    self.trials.beat(ht.number)
                last_beat = now
            self.progress.update()

    def _publish_tables(self) -> None:
        """Store the tables completed since the last call with the study (``dse._table_store``),
        once the workers have their next jobs: other drivers may reuse them, this one holds them."""
        while self.unpublished:
            group = self.unpublished.pop(0)
            results, _ = self.tables[group]
            rows = self.table_rows.get(group, {})
            self.table_store.publish(group, {knob_text(knobs): rows[i] for i, (knobs, _) in results.items()
                                             if i in rows and rows[i].get("status") in CACHEABLE})

    def _others_open(self, study, t0: float) -> bool:
        """Whether to wait for trials other drivers of the study hold open (this one has none and
        may open none): a driver returns once every trial of the budget is told, so every driver
        of a shared study writes its tables from the same trials. Waits a second; trials of dead
        drivers are failed and asked again (this driver then takes them over). Without heartbeats
        (a journal file) only the trials of drivers on this host are waited for: nothing could
        tell that a driver elsewhere died."""
        if self.spec.timeout is not None and time.monotonic() - t0 > self.spec.timeout:
            return False

        def watched(trial) -> bool:
            owner = trial.system_attrs.get(DRIVER_ATTR)
            return self.trials.heartbeats or not isinstance(owner, dict) or owner.get("host") == self.identity["host"]

        running = sum(1 for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                      if watched(t))
        if not running:
            self.progress.update(note="")
            return False
        self.progress.update(note=f"waiting for {running} trial(s) other drivers are running")
        time.sleep(WAIT_S)
        now = time.monotonic()
        if now - self.last_recovery >= RECOVER_EVERY_S:
            self.last_recovery = now
            self._recover_orphans(study)
        return True

    def _may_open(self, study, t0: float) -> bool:
        if self.spec.timeout is not None and time.monotonic() - t0 > self.spec.timeout:
            return False
        # A trial is asked only when every earlier one is told: the sampler then proposes the same
        # sequence whatever the number of workers (a study's answer must not depend on them).
        # The workers stay busy with the schedule tables of the open trial's geometry. A grid's
        # proposals depend only on the order of the asks, not on what it is told: it asks the
        # next trial as soon as the open ones have nothing left to submit, so a worker freed by
        # a trial's shorter layer search starts on the next trial's tables.
        if self.finishing or (self.active and not (self.spec.sampler in RESULT_BLIND
                                                   and not any(layer.waiting for ht in self.active
                                                               for layer in ht.layers))):
            return False
        if self.spec.sampler != "grid" and self._space_exhausted(study):   # a grid visits its points itself
            return False
        # RUNNING counts every driver's open trials, so drivers sharing a study stop together;
        # exact fills (any driver's) are not the sampler's trials and spend no budget.
        started = self._count(study, "COMPLETE", "RUNNING")
        if started - len(self.filled) < self.spec.n_trials:
            return True
        if not self.filled and self.spec.sampler == "grid":
            return False
        fills = sum(1 for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                    if t.user_attrs.get(FILL_ATTR))
        return started - fills < self.spec.n_trials

    def _open(self, study) -> None:
        self._finish_pending(study)     # the sampler asks knowing every finished trial
        ht = self._open_trial(study)
        self.active.append(ht)
        self._finish_if_done(study, ht)

    def _fill_slots(self, study, t0: float) -> None:
        """Submit layer jobs until the pool is full (``prefetch`` jobs queued beyond the CPUs hide
        the driver's storage work), opening a trial only when no open one has a job to submit: a
        trial asked while others run is sampled without their results. (The small space of
        benchmarks/search_quality.py, one layer, 2 workers: with up to 8 trials open TPE needed a
        median of 14 trials to come within 2% of the optimum, with one trial opened ahead 11, as
        here 8; told one trial at a time, 6.)"""
        while self.pool.free_slots() > 0:
            if any(self._submit_from(ht) for ht in list(self.active)):
                continue
            self._finish_pending(study)
            if not self._may_open(study, t0):
                return
            self._open(study)

    def _group(self, layer: _Layer) -> str:
        if layer.group is None:
            layer.group = self._task(layer.job, {}).group_key(self.evaluator.name)
        return layer.group

    @staticmethod
    def _task(job: LayerJob, knobs: dict):
        return make_task(job.hw, job.workload, knobs, job.mode, job.seed)

    def _submit_from(self, ht: _HwTrial) -> bool:
        """Submit the first waiting layer of ``ht`` whose cache group has no job in flight (the
        same layer on the same hardware waits for the other job: its results may answer it)."""
        for layer in ht.layers:
            if not layer.waiting:
                continue
            group = self._group(layer)
            if group in self.tables:           # built by another trial's job meanwhile
                self._answer_from_table(ht, layer)
                self._finish_if_done(None, ht)
                continue
            search = (ht.number, layer.workload.name)      # its shards run side by side
            running = self.running_groups.get(group)
            if running is not None and running[0] != search:
                continue
            self._adopt_stored_table(layer.job, group)
            job = dataclasses.replace(layer.job, known=dict(layer.known), cached=self.cache.group(self._task(layer.job, {})))
            layer.running = True
            self.running_groups[group] = (search, (running[1] if running else 0) + 1)
            self.pool.submit((ht, layer), job)
            return True
        return False

    def _adopt_stored_table(self, job: LayerJob, group: str) -> None:
        """Measurements of the table another driver of the study (or an earlier run elsewhere)
        stored go into the cache, so this table's job replays them instead of evaluating."""
        stored = self.table_store.lookup(group)
        if not stored:
            return
        known = self.cache.group(self._task(job, {}))
        for text, result in stored.items():
            if text not in known:
                self.cache.put(self._task(job, json.loads(text)), result)

    # ---- what comes back from the jobs -------------------------------------------------------
    def _on_event(self, study, event) -> None:
        ht, layer = event.key
        if event.message is not None:
            message = event.message
            for index, knobs, result, how in message["rows"]:
                self._record(ht, layer, event.job, index, knobs, result, how)
            if message.get("space_error"):
                layer.error = message["space_error"]
            if message.get("end"):
                self._job_ended(study, ht, layer, done=True)
            return
        # The worker (or its node) died, or the job failed. Isolated, this is never a candidate's
        # doing: candidates crash and time out in the worker's child process and come back as rows.
        if event.cannot_start:
            raise StudyError(f"candidates cannot be evaluated: {event.crashed}")
        layer.lost += 1
        self._row(ht, layer, None, {}, measurement("run_error", event.crashed), mode=self.mode, attempt=layer.lost)
        if layer.lost >= self.opt.max_attempts:     # no schedule for this layer on this hardware
            layer.error = f"the layer search failed: {event.crashed}"
            self._job_ended(study, ht, layer, done=True)
            return
        self._job_ended(study, ht, layer, done=False)     # resubmitted: it replays what is known

    def _record(self, ht, layer: _Layer, job: LayerJob, index: int, knobs: dict, result: dict, how: str) -> None:
        latency = latency_of(result)
        layer.known[index] = latency
        if how == "static":
            self._row(ht, layer, index, knobs, result, mode="static")
            return
        layer.results[index] = (knobs, latency)
        self.table_rows.setdefault(self._group(layer), {})[index] = result
        if how == "cached":
            self.cache.hits += 1
            self._row(ht, layer, index, knobs, result, mode=self.mode, cached=True)
            return
        self.evaluated += 1
        self.progress.update(candidates=1)
        self.cache.put(self._task(job, knobs), result)
        self._row(ht, layer, index, knobs, result, mode=self.mode, attempt=layer.lost + 1)

    def _job_ended(self, study, ht: _HwTrial, layer: _Layer, *, done: bool) -> None:
        group = self._group(layer)
        search, jobs = self.running_groups[group]
        if jobs > 1:
            self.running_groups[group] = (search, jobs - 1)
        else:
            del self.running_groups[group]
        layer.running = False
        layer.done = done
        parts = [part for part in ht.layers if part.table_group == layer.table_group]
        if done and all(part.done for part in parts):      # every shard of the table is in
            results = {i: r for part in parts for i, r in part.results.items()}
            self.tables[group] = (results, next((part.error for part in parts if part.error), ""))
            self.unpublished.append(group)
        self._finish_if_done(study, ht)

    # ---- finishing a hardware trial ----------------------------------------------------------
    def _finish_if_done(self, study, ht: _HwTrial) -> None:
        if ht not in self.active or not (ht.reason or ht.done):
            return
        self.active.remove(ht)
        self.finishing.append(ht)

    def _finish_pending(self, study) -> None:
        while self.finishing:
            self._finish(study, self.finishing[0])
            self.finishing.pop(0)

    def _finish(self, study, ht: _HwTrial) -> None:
        summary, outcome = self._aggregate(ht)
        # the constraint values' names are the study's CONSTRAINT_NAMES_ATTR, in their order
        if not self.trials.finish(ht.trial, outcome, _results.shown_attrs(summary),
                                  _results.trial_attrs(summary, ht.rows)):
            warnings.warn(f"trial {ht.number} was failed by another driver (no heartbeat for {_storage.GRACE_S} s) "
                          f"and asked again; its results are dropped")
        self._note_best(summary)
        self.progress.update(done=self.progress.done + 1, best=self._best_text(), force=True)
        self._fill_geometry(study, ht)

    def _space_exhausted(self, study) -> bool:
        """Every hardware point of the space that can be built within the budget is held by a
        trial (the exact fills make this reachable): another trial could only repeat one."""
        if self.feasible_points is None:
            knobs = self.spec.hardware
            if not knobs or math.prod(len(k.values) for k in knobs) > ENUMERATE_LIMIT:
                self.feasible_points = frozenset()
            else:
                points = (dict(zip((k.name for k in knobs), values))
                          for values in itertools.product(*(k.values for k in knobs)))
                self.feasible_points = frozenset(json.dumps(p, sort_keys=True) for p in points
                                                 if static_check(self.spec, p).reason is None)
        if not self.feasible_points:
            return False
        held = {json.dumps(t.params, sort_keys=True) for t in study.get_trials(deepcopy=False)}
        return self.feasible_points <= held

    # ---- exact where it is cheap ------------------------------------------------------------
    def _fill_geometry(self, study, ht: _HwTrial) -> None:
        """Once a geometry's tables are complete, every buffer combination of it in the space is
        scored from them exactly (table look-ups, no evaluation) and recorded as a COMPLETE trial
        marked ``dse:exact_fill``: the front is exact over every geometry explored, and the outer
        sampler, which never proposes a point a trial holds, spends its budget on new geometries.
        (The grid sampler visits every point itself.)"""
        if self.spec.sampler == "grid" or ht.hw is None or ht.reason:
            return
        if not all(layer.from_table or layer.done for layer in ht.layers) or \
                any(layer.table_group not in self.tables for layer in ht.layers):
            return
        geometry = tuple(sorted((k, v) for k, v in ht.params.items() if k not in BUFFER_KEYS))
        if geometry in self.filled_geometries:
            return
        self.filled_geometries.add(geometry)
        buffers = [k for k in self.spec.hardware if k.name in BUFFER_KEYS]
        held = {json.dumps(t.params, sort_keys=True) for t in study.get_trials(deepcopy=False)}
        for values in itertools.product(*(k.values for k in buffers)):
            params = {**ht.params, **dict(zip((k.name for k in buffers), values))}
            if json.dumps(params, sort_keys=True) in held:
                continue
            self._record_fill(study, params)

    def _record_fill(self, study, params: dict) -> None:
        fill = self._new_trial(_Point(-1, params))
        if any(layer.job is not None and not layer.done for layer in fill.layers):
            return            # its buffers call for schedules no table holds: a trial of its own
        summary, outcome = self._aggregate(fill)
        token = f"{self.identity['host']}:{self.identity['pid']}:{len(self.filled)}"
        attrs = {**_results.shown_attrs(summary), FILL_ATTR: True, "dse:fill_token": token}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=self.dists, values=outcome.values, user_attrs=attrs,
            system_attrs={**_results.trial_attrs(summary, fill.rows),
                          _storage.CONSTRAINTS_ATTR: list(outcome.constraints.values())}))
        number = next(t.number for t in reversed(study.get_trials(deepcopy=False))
                      if t.user_attrs.get("dse:fill_token") == token)
        self.filled.add(number)
        self._note_best(summary)

    def _aggregate(self, ht: _HwTrial):
        """(the trial's summary, what its sampler is told: ``dse._outcome.Outcome``)."""
        layers, reasons = [], []
        if ht.reason:
            reasons.append(ht.reason)
            for layer in ht.layers:
                self._row(ht, layer, None, {}, measurement("infeasible", ht.reason), mode="static")
        else:
            for workload, shards in ht.searches():
                best = self._best_fitting(ht, workload, shards[0],
                                          {i: r for layer in shards for i, r in layer.results.items()})
                if best is None:
                    failed = next((layer for layer in shards if layer.error), None)
                    why = failed.error if failed else "no schedule of this layer compiled and ran on this hardware"
                    reasons.append(f"{workload.name}: {why}")
                    if failed:
                        self._row(ht, failed, None, {}, measurement("infeasible", failed.error), mode="static")
                    continue
                index, knobs, latency = best
                chosen = next((r for r in ht.rows if r["workload"] == workload.name and r["candidate"] == index
                               and r["status"] == "ok"), None)
                if chosen is None:        # answered by a table another trial built
                    layer = shards[0]
                    chosen = self._row(ht, layer, index, knobs, self.table_rows[layer.table_group][index],
                                       mode=self.mode, cached=True)
                chosen["chosen"] = True
                layers.append({"workload": workload.name, "count": workload.count, "candidate": index,
                               "knobs": knobs, "latency_s": latency, "cycles": chosen["cycles"],
                               **{c: chosen[c] for c in COUNTERS}})
        feasible = not reasons
        summary = {"feasible": feasible, "reason": "; ".join(reasons), **ht.resources, "layers": layers,
                   "candidates": sum(1 for r in ht.rows if r["mode"] != "static"),
                   "statuses": _count(r["status"] for r in ht.rows)}
        if feasible:
            summary["latency_s"] = sum(l["count"] * l["latency_s"] for l in layers)
            summary["cycles"] = sum(l["count"] * l["cycles"] for l in layers)
            for c in COUNTERS:
                summary[c] = sum(l["count"] * l[c] for l in layers)
        measured = {name: summary.get(objective_attr(name)) for name, _ in self.spec.objectives} if feasible else None
        outcome = _outcome.for_study(self.spec, buildable=ht.hw is not None, overruns=ht.violations,
                         layers_without_schedule=0 if ht.reason else len(reasons), measured=measured)
        return summary, outcome

    def _best_fitting(self, ht: _HwTrial, workload, layer: _Layer, results: dict):
        """The fastest schedule of a table that fits this trial's buffers (the table was measured
        on the geometry's largest buffers; counters and cycles do not depend on them). Schedules
        whose tiles exceed a buffer of the trial are passed over without a static check (that
        alone refuses them); the first other one the static check admits is the answer."""
        ranked, demand = self._ranking(workload, layer, results)
        return first_fitting(ranked, demand, ht.hw, lambda knobs: self.evaluator.static_check(workload, ht.hw, knobs))

    def _ranking(self, workload, layer: _Layer, results: dict):
        """A table's successful schedules, fastest first, and the bytes each needs of the inp,
        wgt and acc buffers on the table's hardware (None if the evaluator does not say); kept per
        table, as every trial of the geometry asks the same."""
        group = layer.table_group
        kept = self.rankings.get(group)
        if kept is not None and kept[0] == len(results):
            return kept[1], kept[2]
        ranked = sorted((lat, i, k) for i, (k, lat) in results.items() if lat is not None)
        demand_of = getattr(self.evaluator, "buffer_demand", None)
        demand = None
        if demand_of is not None and ranked:
            try:
                demand = np.array([[demand_of(workload, layer.job.hw, k)[b] for b in ("inp", "wgt", "acc")]
                                   for _, _, k in ranked], dtype=np.int64)
            except Exception:        # a demand it cannot say: every schedule gets the static check
                demand = None
        self.rankings[group] = (len(results), ranked, demand)
        return ranked, demand

    def _note_best(self, summary: dict) -> None:
        """Keep the best first objective so far (for the progress line; no storage query)."""
        name, direction = self.spec.objectives[0]
        value = summary.get(objective_attr(name))
        if not summary.get("feasible") or value is None:
            return
        if self.best_value is None or (value < self.best_value if direction == "minimize" else value > self.best_value):
            self.best_value = value

    def _best_text(self) -> str:
        name, _ = self.spec.objectives[0]
        if self.best_value is None:
            return "none feasible yet"
        best = self.best_value
        return f"{name} {best * 1e3:.4g} ms" if name == "latency" else f"{name} {best:g}"

    # ---- the stock baseline ---------------------------------------------------------------------
    def _enqueue_base(self, study) -> None:
        """A new study's first trial is its base hardware when the space holds it (the grid sampler
        visits it anyway): the stock point is measured with the study's own schedule tables, whose
        searches start from upstream's schedules, and the answer is never slower."""
        base = {k.name: getattr(self.spec.base, k.name) for k in self.spec.hardware}
        if not base or any(base[k.name] not in k.values for k in self.spec.hardware):
            return
        # The grid sampler visits every point, stock included, and would not count an enqueued one.
        if self.spec.sampler == "grid" or study.get_trials(deepcopy=False):
            return
        study.enqueue_trial(base, user_attrs={"dse:stock": True})

    def _baseline(self) -> None:
        """Measure the base hardware with upstream's schedules (``evaluator.baseline_knobs``: TopHub's,
        else the fallback) and write ``baseline.json``: the reference the chosen configuration's
        speedup and resource change are given against."""
        knobs_of = getattr(self.evaluator, "baseline_knobs", None)
        if knobs_of is None:
            return
        hw = self.spec.base
        check = static_check(self.spec, {})
        own = self._stock_schedules()
        jobs, layers = [], []
        for workload in self.workloads:
            try:
                knobs, source = knobs_of(workload, hw), "upstream"
                if knobs is None:     # upstream never tuned it: the stock hardware's best of our tables
                    knobs, source = own.get(workload.name), "table"
                if knobs is None:
                    knobs, source = {}, "fallback"
            except Exception as exc:
                layers.append({"workload": workload.name, "count": workload.count, "knobs": None, "source": None,
                               "status": "infeasible", "error": f"{type(exc).__name__}: {exc}"})
                continue
            jobs.append((len(layers), make_task(hw, workload, knobs, self.mode, self.spec.seed)))
            layers.append({"workload": workload.name, "count": workload.count, "knobs": knobs, "source": source})
        for (position, _), (result, _) in zip(jobs, self._run_all([task for _, task in jobs])):
            layers[position].update({k: result.get(k) for k in ("status", "error", "cycles", "latency_s", *COUNTERS,
                                                                *TIMING)})
        ok = all(layer.get("status") == "ok" for layer in layers)
        baseline = {"hardware": hw.to_dict(),
                    "schedules": "upstream's TopHub schedule where TopHub tuned the layer; elsewhere the best "
                                 "schedule of the study's tables that fits the stock hardware",
                    "feasible": ok and check.reason is None, "reason": check.reason or "",
                    **{k: check.resources.get(k) for k in RESOURCES},
                    "latency_s": sum(l["count"] * l["latency_s"] for l in layers) if ok else None,
                    "cycles": sum(l["count"] * l["cycles"] for l in layers) if ok else None,
                    "layers": layers}
        (self.out / "baseline.json").write_text(json.dumps(baseline, indent=2, default=str) + "\n")

    def _stock_schedules(self) -> dict:
        """Workload -> the schedule the study's tables give its stock hardware: the trial of the
        base hardware, or (when the sampler never visited it) the tables of its geometry if this
        run holds them; {} otherwise."""
        base = {k.name: getattr(self.spec.base, k.name) for k in self.spec.hardware}
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            summary = _results.summary_of(t) if t.params == base else None
            if summary and summary.get("feasible"):
                return {layer["workload"]: layer["knobs"] for layer in summary["layers"]}
        try:
            stock = self._new_trial(_Point(-1, base))
        except Exception:
            return {}
        if stock.reason or any(not layer.from_table for layer in stock.layers):
            return {}
        summary, _ = self._aggregate(stock)
        return {layer["workload"]: layer["knobs"] for layer in summary["layers"]}

    # ---- verification of the reported candidates ------------------------------------------------
    def _verify(self, study) -> None:
        if self.spec.verify != "top":
            return
        by_name = {w.name: w for w in self.workloads}
        failed: set[int] = set()
        while True:
            complete = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
            trials, verifies = self.results.load(complete)
            failed |= {n for n, v in verifies.items() if not v["verified"]}
            targets = _tables.report_targets(trials, self.spec, exclude=failed)
            todo = [n for n in targets if n not in verifies]
            if not todo:
                return
            jobs = []
            for number in todo:
                rec = trials[number]
                hw = hwconfigs.HwConfig.from_dict({k: rec["rows"][0][k] for k in hwconfigs.FIELDS})
                for layer in rec["summary"]["layers"]:
                    task = make_task(hw, by_name[layer["workload"]], layer["knobs"], self.spec.verify_runner,
                                     self.spec.seed)
                    jobs.append((number, layer, task))
            results = self._run_all([job[2] for job in jobs])
            per_trial: dict[int, list] = {}
            for (number, layer, task), (result, attempts) in zip(jobs, results):
                # the bit-exact run re-measures on the general path what the search counted (its
                # count path is a verified shortcut): every counter and the cycles must agree
                count_ok = all(result.get(c) == layer[c] for c in COUNTERS) and result.get("cycles") == layer["cycles"]
                row = dict(next(r for r in trials[number]["rows"] if r["workload"] == layer["workload"]
                                and r["candidate"] == layer["candidate"] and r.get("chosen")))
                searched = row.get("mode")
                row.update(result)
                row.update(mode=task.mode, attempt=attempts, cached=False, chosen=True)
                if result["status"] == "ok" and not count_ok:
                    row.update(status="mismatch", error=f"counters or cycles of the {task.mode} run differ from "
                                                        f"the search's {searched} run")
                row["verified"] = row["status"] == "ok" and bool(row.get("correct"))
                per_trial.setdefault(number, []).append(row)
            for number, rows in per_trial.items():
                verified = all(r["verified"] for r in rows)
                self.results.write_verify(number, rows, verified)
                if not verified:
                    failed.add(number)

    def _run_all(self, tasks) -> list:
        """Run single candidates to completion on the pool (cache first): [(measurement, attempts)]."""
        results: dict[int, tuple] = {}
        queue = list(range(len(tasks)))
        attempts = {i: 0 for i in queue}
        while queue or self.pool.in_flight():
            while queue and self.pool.free_slots() > 0:
                i = queue.pop(0)
                task = tasks[i]
                hit = self.cache.get(task)
                if hit is not None:
                    results[i] = (hit, 1)
                    continue
                attempts[i] += 1
                self.pool.submit(i, LayerJob(hwconfigs.HwConfig.from_dict(task.hw_dict), task.workload, task.mode, task.seed,
                                             fixed=[task.knob_dict]))
            for event in self.pool.wait(timeout=0.5):
                i = event.key
                if event.message is not None:
                    for _, _, result, how in event.message["rows"]:
                        if how == "eval":
                            self.evaluated += 1
                            self.cache.put(tasks[i], result)
                        results[i] = (result, attempts[i])
                elif event.cannot_start:
                    raise StudyError(f"candidates cannot be evaluated: {event.crashed}")
                elif attempts[i] < self.opt.max_attempts:
                    queue.append(i)
                else:
                    results[i] = (measurement("run_error", event.crashed), attempts[i])
        return [results[i] for i in range(len(tasks))]


def _count(items) -> dict:
    out: dict = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def study_evaluator(evaluator, spec: StudySpec):
    """The evaluator measuring with the study's runners: the board runner of ``runner = "board"``
    joins it (its token is read here, once, and travels to the workers with it), and every
    candidate is bounded by ``candidate_timeout``."""
    bind = getattr(evaluator, "with_runners", None)
    if spec.runner != "board":
        return bind([], spec.candidate_timeout) if bind is not None else evaluator
    if bind is None:
        raise StudyError(f"{spec.path} [study] runner = 'board': evaluator {getattr(evaluator, 'name', evaluator)!r} "
                         f"cannot measure on a board")
    from .board import BoardError
    from .runners import BoardRunner

    try:
        board = BoardRunner(spec.boards, token_file=spec.board_token_file)
    except BoardError as exc:
        raise StudyError(f"{spec.path} [study] board_token_file = {spec.board_token_file!r}: {exc}") from None
    return bind([board], spec.candidate_timeout)


def run_study(spec: StudySpec, evaluator, options: RunOptions) -> RunSummary:
    """Run (or resume) a study to its budget and write the results into ``options.out``."""
    return Driver(spec, evaluator, options).run()

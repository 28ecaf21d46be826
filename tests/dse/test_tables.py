"""Schedule tables: one search per (layer, geometry) shared by every hardware trial, the
invariance that makes that exact, warm starts, and a study's answer independent of the workers."""
import itertools
import random

import pandas as pd
import pytest

import hwconfigs
import simulator
from compiler import CompileError, workloads
from dse import load_study
from dse._driver import BUFFER_KEYS, RunOptions, run_study, table_hw, table_hws
from dse._inner import LayerSearch
from tests.dse._toy import ToyEvaluator
from tests.dse.conftest import write_study

# ---- the invariance -----------------------------------------------------------------------------

_BUFFERS = [dict(zip(BUFFER_KEYS, sizes)) for sizes in
            [(15, 18, 17), (16, 19, 18), (14, 18, 17), (15, 17, 16), (13, 16, 15), (17, 20, 19), (15, 18, 15)]]


@pytest.mark.parametrize("geometry, layer", [
    (dict(LOG_BATCH=0, LOG_BLOCK=4), workloads.resnet18()["C11"]),
    (dict(LOG_BATCH=0, LOG_BLOCK=4), workloads.Conv2D(batch=1, height=14, width=14, in_channels=64,
                                                      out_channels=64, kernel=3, stride=2, pad=1)),
    (dict(LOG_BATCH=1, LOG_BLOCK=3), workloads.Dense(batch=2, in_features=256, out_features=128,
                                                     epilogue=(("shr", 3), ("relu",)))),
    (dict(LOG_BATCH=0, LOG_BLOCK=4), workloads.Dense(batch=1, in_features=512, out_features=256,
                                                     epilogue=(("bias",), ("shr", 3), ("relu",)))),
    (dict(LOG_BATCH=2, LOG_BLOCK=3), workloads.Conv2D(batch=4, height=7, width=7, in_channels=64,
                                                      out_channels=32, kernel=1, stride=1, pad=0)),
    (dict(LOG_BATCH=0, LOG_BLOCK=4), workloads.resnet18(residual_adds=True)["R4"]),
])
def test_counters_and_cycles_do_not_depend_on_the_buffers_a_schedule_fits(geometry, layer):
    """A schedule's instruction stream changes with the buffer sizes only through ISA field
    widths: wherever it fits, its counters and cycles are the same. (What a table relies on.)"""
    rng = random.Random(hash(layer.describe()) % 1000)
    legal = []
    for buffers in _BUFFERS:
        try:
            legal.append(hwconfigs.get_env("pynq", **geometry, **buffers))
        except hwconfigs.ConfigError:
            pass
    largest = max(legal, key=lambda env: sum(getattr(env, key) for key in BUFFER_KEYS))
    checked = 0
    for knobs in workloads.random_legal_knobs(layer, largest, rng, 6, max_tries=4000):
        seen = None
        for buffers in _BUFFERS:
            try:
                env = hwconfigs.get_env("pynq", **geometry, **buffers)
                workloads.check_knobs(layer, env, knobs)
            except (CompileError, hwconfigs.ConfigError):
                continue
            try:
                mod = workloads.build(layer, env=env, knobs=knobs)
            except CompileError:        # a knob set the static check lets through (issue #16): not ours here
                break
            res = simulator.run(mod, count_only=True)
            figures = (res.stats, res.cycles, res.timing[0].as_row())
            assert seen is None or figures == seen, (knobs, buffers)
            seen = figures
            checked += 1
    assert checked >= 8


# ---- warm starts ------------------------------------------------------------------------------

def test_tophub_knobs_match_shape_and_geometry_only():
    layers = workloads.resnet18()
    pynq = hwconfigs.get_env("pynq")
    for name, layer in layers.items():
        found = workloads.tophub_knobs(layer, pynq)
        assert found, name
        workloads.check_knobs(layer, pynq, found[0])       # upstream's schedule fits upstream's hardware
    assert workloads.tophub_knobs(layers["C2"], hwconfigs.get_env("pynq", LOG_BLOCK=5)) == []
    four_by_eight = hwconfigs.get_env("pynq", LOG_BATCH=2, LOG_BLOCK=3)
    assert all(workloads.tophub_knobs(layer, four_by_eight) for layer in workloads.resnet18(batch=4).values())
    assert workloads.tophub_knobs(workloads.Conv2D(batch=1, height=9, width=9, in_channels=16, out_channels=16,
                                                   kernel=3, pad=1), pynq) == []


@pytest.mark.parametrize("sampler, budget", [("tpe", 6), ("random", 6), ("grid", 0)])
def test_a_search_proposes_its_warm_starts_first(sampler, budget):
    space = {"tile_h": [[4, 1], [2, 2], [1, 4]], "oc_nthread": [1, 2], "order": ["a", "b"]}
    seeds = [{"tile_h": [-1, 2], "oc_nthread": 2}, {"tile_h": [1, 4], "oc_nthread": 1, "order": "b"},
             {"tile_h": [3, 3]}]                                  # not in the space: skipped
    search = LayerSearch(space, budget, sampler, 3, lambda k: None, seeds=seeds)
    first = [search.next().knobs for _ in range(2)]
    assert first == [{"oc_nthread": 2, "order": "a", "tile_h": [2, 2]},
                     {"oc_nthread": 1, "order": "b", "tile_h": [1, 4]}]


def test_the_real_evaluator_seeds_with_tophub_then_the_fallback():
    from dse._study import Workload
    from dse.evaluate import SimulatorEvaluator

    ev = SimulatorEvaluator()
    hw = hwconfigs.HwConfig.from_dict(hwconfigs.get_env("pynq").cfg.to_dict())
    layer = next(w for w in ev.resolve([Workload("net", "resnet18", (("batch", 1), ("layers", ("C8",)),
                                                                     ("residual_adds", True)))]))
    seeds = ev.seed_knobs(layer, hw)
    assert seeds[0] == workloads.tophub_knobs(workloads.resnet18()["C8"], hwconfigs.get_env("pynq"))[0]
    assert seeds[-1] == workloads.fallback_knobs(workloads.resnet18()["C8"], hwconfigs.get_env("pynq"))
    assert ev.baseline_knobs(layer, hw) == seeds[0]
    adds = ev.resolve([Workload("net", "resnet18", (("batch", 1), ("layers", ("R1",)), ("residual_adds", True)))])
    assert ev.baseline_knobs(adds[0], hw) is None          # TopHub never tuned it


def test_resnet18_workload_is_the_whole_offloaded_network():
    from dse._study import Workload
    from dse.evaluate import SimulatorEvaluator

    ev = SimulatorEvaluator()
    whole = ev.resolve([Workload("net", "resnet18", (("batch", 1), ("layers", ()), ("residual_adds", True)))])
    assert [w.name for w in whole] == [*(f"C{i}" for i in range(2, 12)), "R1", "R2", "R3", "R4"]
    assert sum(w.count for w in whole) == 19 + 8
    convs = ev.resolve([Workload("net", "resnet18", (("batch", 1), ("layers", ()), ("residual_adds", False)))])
    assert sum(w.count for w in convs) == 19


# ---- the study's answer -----------------------------------------------------------------------

CODESIGN = """
[study]
name = "tables"
seed = 3
n_trials = 10
verify = "none"
[objectives]
latency = "minimize"
bram = "minimize"
[hardware]
LOG_BLOCK = [3, 4]
LOG_ACC_BUFF_SIZE = { low = 14, high = 17 }
LOG_INP_BUFF_SIZE = [13, 15]
[schedule]
trials_per_layer = 6
[[workloads]]
name = "a"
op = "toy_gemm"
m = 4
n = 128
k = 256
[[workloads]]
name = "b"
op = "toy_gemm"
m = 1
n = 64
k = 512
count = 3
"""


def _answer(out):
    trials = pd.read_parquet(out / "trials.parquet")
    keep = ["trial", "LOG_BLOCK", "LOG_ACC_BUFF_SIZE", "LOG_INP_BUFF_SIZE", "feasible", "latency_s", "bram"]
    rows = pd.read_parquet(out / "results.parquet")
    chosen = rows[rows["chosen"]][["trial", "workload", "tile_m", "tile_n", "tile_k", "nthread", "cycles"]]
    return (trials[keep].sort_values("trial").reset_index(drop=True),
            chosen.sort_values(["trial", "workload"]).reset_index(drop=True),
            (out / "best_config.json").read_text())


@pytest.mark.parametrize("sampler", ["tpe", "grid"])
def test_the_answer_does_not_depend_on_the_workers(ray_session, tmp_path, sampler):
    """The default sampler is told every trial before the next is asked; the grid, whose
    proposals do not depend on what it is told, opens the next trial while the last layer
    searches of the previous ones run. Either way one and two workers give the same answer."""
    spec = load_study(write_study(tmp_path, CODESIGN.replace('seed = 3', f'seed = 3\nsampler = "{sampler}"')),
                      ToyEvaluator.ops)
    answers = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        run_study(spec, ToyEvaluator(), RunOptions(out=out, workers=workers, progress=False))
        answers.append(_answer(out))
    (t1, c1, b1), (t2, c2, b2) = answers
    pd.testing.assert_frame_equal(t1, t2)
    pd.testing.assert_frame_equal(c1, c2)
    assert b1 == b2
    # one hardware point, one latency; one table per (layer, geometry): each schedule evaluated once
    assert t1.groupby(["LOG_BLOCK", "LOG_ACC_BUFF_SIZE", "LOG_INP_BUFF_SIZE"])["latency_s"].nunique().max() <= 1
    rows = pd.read_parquet(tmp_path / "w2" / "results.parquet")
    evaluated = rows[(rows["mode"] == "count") & ~rows["cached"]]
    knob_cols = ["workload", "LOG_BLOCK", "tile_m", "tile_n", "tile_k", "nthread"]
    assert not evaluated.duplicated(knob_cols).any()


def test_a_table_is_measured_on_the_largest_buffers_of_its_geometry(tmp_path):
    spec = load_study(write_study(tmp_path, CODESIGN), ToyEvaluator.ops)
    small = spec.hw_config({"LOG_BLOCK": 4, "LOG_ACC_BUFF_SIZE": 14, "LOG_INP_BUFF_SIZE": 13})
    big = table_hw(spec, small)
    assert (big.LOG_ACC_BUFF_SIZE, big.LOG_INP_BUFF_SIZE, big.LOG_BLOCK) == (17, 15, 4)
    assert big.LOG_WGT_BUFF_SIZE == small.LOG_WGT_BUFF_SIZE
    assert table_hws(spec, small) == [big]          # the largest of each buffer can be built together


def test_where_the_largest_buffers_cannot_be_built_together_a_table_spans_the_maximal_ones(tmp_path):
    body = CODESIGN.replace('LOG_INP_BUFF_SIZE = [13, 15]', 'LOG_INP_BUFF_SIZE = { low = 13, high = 17 }\n'
                            'LOG_WGT_BUFF_SIZE = { low = 15, high = 20 }')
    body = body.replace('LOG_ACC_BUFF_SIZE = { low = 14, high = 17 }', 'LOG_ACC_BUFF_SIZE = { low = 14, high = 19 }')
    spec = load_study(write_study(tmp_path, body), ToyEvaluator.ops)
    point = spec.hw_config({"LOG_BLOCK": 4, "LOG_ACC_BUFF_SIZE": 14, "LOG_INP_BUFF_SIZE": 13, "LOG_WGT_BUFF_SIZE": 15})
    hws = table_hws(spec, point)
    sizes = [tuple(getattr(h, k) for k in BUFFER_KEYS) for h in hws]
    assert len(hws) > 1 and sizes == sorted(sizes, key=lambda v: (-sum(v), [-x for x in v]))
    for a in sizes:                      # none exceeds another in every buffer
        assert not any(b != a and all(x >= y for x, y in zip(b, a)) for b in sizes)
    for values in [(13, 15, 14), (17, 15, 14), (14, 20, 14), (13, 15, 19)]:   # every buildable point is covered
        try:
            spec.hw_config({"LOG_BLOCK": 4, **dict(zip(BUFFER_KEYS, values))})
        except hwconfigs.ConfigError:
            continue
        assert any(all(x >= y for x, y in zip(s, values)) for s in sizes), values


ONE_GEOMETRY = """
[study]
name = "resume"
sampler = "grid"
seed = 5
n_trials = 3
verify = "none"
[objectives]
latency = "minimize"
bram = "minimize"
[hardware]
LOG_ACC_BUFF_SIZE = { low = 14, high = 17 }
LOG_INP_BUFF_SIZE = [13, 14, 15]
[schedule]
trials_per_layer = 6
[[workloads]]
name = "a"
op = "toy_gemm"
m = 4
n = 128
k = 256
"""


def test_a_resumed_study_reuses_its_tables(ray_session, tmp_path):
    spec = load_study(write_study(tmp_path, ONE_GEOMETRY), ToyEvaluator.ops)
    out = tmp_path / "out"
    first = run_study(spec, ToyEvaluator(), RunOptions(out=out, workers=2, progress=False))
    assert first.complete == 3 and first.candidates > 0
    more = load_study(write_study(tmp_path, ONE_GEOMETRY), ToyEvaluator.ops, trials=7)
    second = run_study(more, ToyEvaluator(), RunOptions(out=out, workers=2, progress=False))
    assert second.complete == 7 and second.candidates == 0       # every schedule answered by the table
    trials = pd.read_parquet(out / "trials.parquet")
    assert trials.groupby(["LOG_ACC_BUFF_SIZE", "LOG_INP_BUFF_SIZE"])["latency_s"].nunique().max() <= 1


# ---- tables shared between studies, keyed by the code's identity --------------------------------

class _SharingToy(ToyEvaluator):
    shares_cache = True


def test_a_second_study_reuses_the_first_ones_measurements(ray_session, tmp_path, monkeypatch):
    monkeypatch.setenv("VTA_DSE_CACHE_DIR", str(tmp_path / "cache"))
    body = ONE_GEOMETRY
    first = run_study(load_study(write_study(tmp_path, body, "a.toml"), ToyEvaluator.ops), _SharingToy(),
                      RunOptions(out=tmp_path / "a", workers=2, progress=False))
    other = body.replace('name = "resume"', 'name = "another"').replace("n_trials = 3", "n_trials = 4")
    second = run_study(load_study(write_study(tmp_path, other, "b.toml"), ToyEvaluator.ops), _SharingToy(),
                       RunOptions(out=tmp_path / "b", workers=2, progress=False))
    assert first.candidates > 0 and second.candidates == 0
    assert (tmp_path / "cache" / f"{ToyEvaluator.name}.jsonl").is_file()


def test_the_code_identity_changes_with_any_source_file(tmp_path, monkeypatch):
    from dse._identity import code_identity

    package = tmp_path / "pkg_identity_probe"
    package.mkdir()
    (package / "__init__.py").write_text("X = 1\n")
    (package / "data.json").write_text("{}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_identity("pkg_identity_probe")
    code_identity.cache_clear()
    (package / "data.json").write_text('{"a": 1}\n')
    assert code_identity("pkg_identity_probe") != before
    code_identity.cache_clear()
    assert code_identity("no_such_module_here") != code_identity("another_missing_one")


def test_the_simulator_evaluator_is_named_by_its_code():
    from dse._identity import code_identity
    from dse.evaluate import SimulatorEvaluator

    name = SimulatorEvaluator().name
    assert name.startswith("simulator-") and name[10:] == code_identity(
        "compiler", "simulator", "hwconfigs", "dse.evaluate", "dse.fastcount", "dse.runners")[:16]


def test_every_buffer_point_of_an_explored_geometry_is_scored_exactly(ray_session, tmp_path):
    """Once a geometry's tables exist, its other buffer points are scored from them (no
    evaluation, no budget): two sampled trials explore both geometries, and the study holds every
    buildable point with the latency a brute force over the tables gives."""
    spec = load_study(write_study(tmp_path, CODESIGN.replace("n_trials = 10", "n_trials = 2")), ToyEvaluator.ops)
    out = tmp_path / "out"
    summary = run_study(spec, ToyEvaluator(), RunOptions(out=out, workers=2, progress=False))
    trials = pd.read_parquet(out / "trials.parquet")
    points = {(int(r.LOG_BLOCK), int(r.LOG_ACC_BUFF_SIZE), int(r.LOG_INP_BUFF_SIZE)) for r in trials.itertuples()}
    assert len(points) == len(trials)                                   # no point twice
    buildable = set()
    for block, acc, inp in itertools.product([3, 4], range(14, 18), [13, 15]):
        try:
            spec.hw_config({"LOG_BLOCK": block, "LOG_ACC_BUFF_SIZE": acc, "LOG_INP_BUFF_SIZE": inp})
            buildable.add((block, acc, inp))
        except hwconfigs.ConfigError:
            pass
    assert buildable <= points and summary.complete - summary.filled == 2 and summary.filled > 0
    # each point's latency is the table's best fitting schedule per layer (the rows of the tables)
    rows = pd.read_parquet(out / "results.parquet")
    measured = rows[(rows["mode"] == "count") & (rows["status"] == "ok") & ~rows["cached"]]
    ev = ToyEvaluator()
    for r in trials[trials["feasible"] == True].itertuples():  # noqa: E712
        hw = spec.hw_config({"LOG_BLOCK": r.LOG_BLOCK, "LOG_ACC_BUFF_SIZE": r.LOG_ACC_BUFF_SIZE,
                             "LOG_INP_BUFF_SIZE": r.LOG_INP_BUFF_SIZE})
        total = 0.0
        for w in spec.workloads:
            table = measured[(measured["workload"] == w.name) & (measured["LOG_BLOCK"] == r.LOG_BLOCK)]
            fits = [row.latency_s for row in table.itertuples()
                    if ev.static_check(w, hw, {k: int(getattr(row, k)) for k in ("tile_m", "tile_n", "tile_k",
                                                                                  "nthread")}) is None]
            total += w.count * min(fits)
        assert abs(total - r.latency_s) <= 1e-12 * total, r


# ---- tables kept with the study: a second driver of a shared study reuses them ------------------

def test_a_second_driver_of_a_shared_study_reuses_its_stored_tables(ray_session, tmp_path):
    """Two drivers of one study (one storage URL, as on a shared PostgreSQL; here one SQLite file),
    each with its own output folder and no cache shared between them: the second evaluates nothing
    the first measured, because the tables live in the study's storage."""
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    spec = load_study(write_study(tmp_path, ONE_GEOMETRY), ToyEvaluator.ops)
    first = run_study(spec, ToyEvaluator(), RunOptions(out=tmp_path / "a", workers=2, progress=False, storage=storage))
    assert first.complete == 3 and first.candidates > 0
    more = load_study(write_study(tmp_path, ONE_GEOMETRY), ToyEvaluator.ops, trials=6)
    second = run_study(more, ToyEvaluator(), RunOptions(out=tmp_path / "b", workers=2, progress=False, storage=storage))
    assert second.complete == 6 and second.candidates == 0
    a, b = (pd.read_parquet(tmp_path / d / "trials.parquet") for d in "ab")
    assert b["latency_s"].tolist()[:3] == a["latency_s"].tolist()


def test_stored_tables_round_trip_and_refuse_what_is_not_one():
    import hypothesis
    from hypothesis import strategies as st

    from dse import _blob, _table_store

    rows = {'{"tile_b": 1}': {"status": "ok", "cycles": 12, "latency_s": 1.5e-4, "bound_by": "load"},
            '{"tile_b": 2}': {"status": "infeasible", "cycles": None, "error": "too big"}}
    attrs = _blob.attributes("k", _table_store.body("g", rows))
    group, back = _table_store.rows_of(_blob.read(attrs, "k"))
    assert group == "g" and back == {k: {f: v.get(f) for f in ("bound_by", "cycles", "error", "latency_s", "status")}
                                     for k, v in rows.items()}

    @hypothesis.given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
    @hypothesis.settings(max_examples=200, deadline=None)
    def junk_is_refused(text):
        with pytest.raises(ValueError):
            _blob.decode(text)
        assert _blob.read({"k": 1, "k#0": text}, "k") is None and _blob.read({"k": text}, "k") is None
        with pytest.raises(ValueError):
            _table_store.rows_of({"format": _table_store.FORMAT, "group": "g", "fields": ["a"], "rows": [[text]]}
                                 if text else {"format": text})

    junk_is_refused()


def test_a_large_value_is_stored_in_pieces_and_read_only_when_every_piece_is_there():
    import random

    from dse import _blob

    rng = random.Random(0)
    value = {"rows": [[rng.random() for _ in range(20)] for _ in range(3000)]}   # incompressible floats
    attrs = _blob.attributes("v", value)
    assert attrs["v"] > 1 and list(attrs)[-1] == "v"                 # several pieces, the count last
    assert all(len(piece) <= _blob.PIECE for key, piece in attrs.items() if key != "v")
    assert _blob.read(attrs, "v") == value
    for missing in ("v", "v#0", f"v#{attrs['v'] - 1}"):               # a writer killed part way
        assert _blob.read({k: v for k, v in attrs.items() if k != missing}, "v") is None
    assert _blob.read({**attrs, "v": True}, "v") is None and _blob.read({**attrs, "v#1": 7}, "v") is None
    small = _blob.attributes("s", {"a": [1, 2]})
    assert list(small) == ["s"] and _blob.read(small, "s") == {"a": [1, 2]}     # one piece: one attribute
    assert _blob.read({"s": small["s"][:-4]}, "s") is None
    assert _blob.is_piece("v#3") and _blob.is_piece("dse:rows#0") and not _blob.is_piece("v") \
        and not _blob.is_piece("#3") and not _blob.is_piece("v#x")


def test_the_table_store_reads_other_drivers_tables_and_rereads_at_most_every_refresh():
    import optuna

    from dse import _table_store

    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(study_name="s", storage=storage)
    now = [0.0]
    writer = _table_store.TableStore(storage, "s")
    reader = _table_store.TableStore(storage, "s", clock=lambda: now[0])
    assert reader.lookup("g1") is None
    writer.publish("g1", {"{}": {"status": "ok", "cycles": 3}})
    assert reader.lookup("g1") is None                 # read just now: not again before REFRESH_S
    now[0] += _table_store.REFRESH_S
    assert reader.lookup("g1") == {"{}": {"cycles": 3, "status": "ok"}}
    storage.set_study_system_attr(storage.get_study_id_from_name("s"), _table_store.attr_key("g2"), "garbage")
    now[0] += _table_store.REFRESH_S
    assert reader.lookup("g2") is None                 # damaged: costs evaluations, not an error


def test_a_space_no_larger_than_exhaustive_up_to_is_enumerated_whole():
    """With ``exhaustive_up_to``, a table's search measures every legal schedule of a small space,
    whatever the budget: its best at every buffer size is then the true optimum."""
    space = {"a": list(range(6)), "b": list(range(5))}
    legal = lambda k: None if (k["a"] + k["b"]) % 3 else "refused"    # noqa: E731

    def run(limit):
        search = LayerSearch(space, 4, "tpe", 0, legal, exhaustive_up_to=limit)
        evaluated = []
        while (p := search.next()) is not None:
            if p.rejected is None:
                evaluated.append(p.knobs)
                search.report(p, float(p.knobs["a"] * 7 + p.knobs["b"]))
        return search, evaluated

    whole, evaluated = run(30)
    assert whole.exhaustive and len(evaluated) == sum(1 for a in range(6) for b in range(5) if (a + b) % 3)
    sampled, evaluated = run(29)
    assert not sampled.exhaustive and len(evaluated) == 4


def test_the_study_file_takes_exhaustive_up_to(tmp_path):
    from dse import StudyError

    spec = load_study(write_study(tmp_path, ONE_GEOMETRY.replace("[schedule]", "[schedule]\nexhaustive_up_to = 5000")),
                      ToyEvaluator.ops)
    assert spec.exhaustive_up_to == 5000
    with pytest.raises(StudyError, match="exhaustive_up_to"):
        load_study(write_study(tmp_path, ONE_GEOMETRY.replace("[schedule]", "[schedule]\nexhaustive_up_to = -1")),
                   ToyEvaluator.ops)


@pytest.mark.parametrize("geometry, op, params", [
    (dict(LOG_BATCH=0, LOG_BLOCK=4), "resnet18_layer", (("batch", 1), ("layer", "C10"))),
    (dict(LOG_BATCH=0, LOG_BLOCK=3), "resnet18_layer", (("batch", 1), ("layer", "R3"))),
    (dict(LOG_BATCH=1, LOG_BLOCK=3), "dense", (("batch", 2), ("in_features", 256), ("out_features", 128))),
])
def test_a_trial_takes_the_fastest_table_schedule_its_buffers_admit(geometry, op, params):
    """The buffer demand lets a trial pass over schedules too large for it without a static
    check; the answer is the same as checking every schedule in order."""
    import numpy as np

    from dse._driver import first_fitting
    from dse._study import Workload
    from dse.evaluate import SimulatorEvaluator, _layer

    ev = SimulatorEvaluator()
    workload = Workload("w", op, params, 1)
    big = None
    for sizes in sorted(itertools.product(range(12, 18), range(14, 20), range(13, 19)), key=sum, reverse=True):
        try:
            big = hwconfigs.get_env("pynq", **geometry, **dict(zip(BUFFER_KEYS, sizes)))
            break
        except hwconfigs.ConfigError:
            continue
    rng = random.Random(7)
    knob_sets = workloads.random_legal_knobs(_layer(op, params), big, rng, 300, max_tries=30000)
    ranked = sorted((rng.random(), i, k) for i, k in enumerate(knob_sets))
    demand = np.array([[ev.buffer_demand(workload, big.cfg, k)[b] for b in ("inp", "wgt", "acc")] for _, _, k in ranked])
    answered = 0
    for inp, wgt, acc in itertools.product(range(12, 17), range(14, 20, 2), range(13, 19)):
        try:
            hw = big.cfg.replace(LOG_INP_BUFF_SIZE=inp, LOG_WGT_BUFF_SIZE=wgt, LOG_ACC_BUFF_SIZE=acc)
        except hwconfigs.ConfigError:
            continue
        check = lambda k: ev.static_check(workload, hw, k)                # noqa: E731
        expected = next(((i, k, lat) for lat, i, k in ranked if check(k) is None), None)
        assert first_fitting(ranked, demand, hw, check) == expected
        assert first_fitting(ranked, None, hw, check) == expected
        answered += expected is not None
    assert answered > 3

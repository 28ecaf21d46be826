"""optuna-dashboard opens a study's storage as-is.

Real runs of the driver (on the analytic test double, one shared Ray session) write
``out/study.db``; optuna-dashboard's own server (``optuna_dashboard.wsgi``, what the
``optuna-dashboard sqlite:///out/study.db`` command serves) answers in-process the requests its
front end makes for the study list and a study's page. Every answer must be strict JSON (the
browser's ``JSON.parse`` refuses ``Infinity`` and ``NaN``) and show the run as Optuna holds it:
trials, directions, objective names, user attributes whole, and constraints, so that an
infeasible trial is drawn as infeasible (the front end's test is ``constraints.every(c => c <= 0)``,
true for an empty list).
"""
import io
import json
import math
import sys

import optuna
import optuna_dashboard      # a test dependency: missing, this module errors rather than skips
import pandas as pd
import pytest

from dse import load_study
from dse._driver import RunOptions, run_study
from tests.dse._toy import ToyEvaluator
from tests.dse.conftest import TOY_LAYERS, write_study

# Six grid points, each kind of trial: feasible, hardware that cannot be built (every objective
# +inf) and hardware over the BRAM budget (every objective +inf too; its BRAM in the attributes).
PARETO = """
[study]
name = "dash-pareto"
sampler = "grid"
seed = 3
n_trials = 6
verify = "top"
verify_top_k = 2
[objectives]
latency = "minimize"
bram = "minimize"
[hardware]
LOG_BLOCK = [3, 4]
LOG_ACC_BUFF_SIZE = [13, 15, 17]
[schedule]
trials_per_layer = 3
[constraints]
bram = 100
""" + TOY_LAYERS

# One objective, and a network's worth of layers: ResNet-18's ten conv layers make a `schedules`
# attribute of ~2.2 kB, past the 1024 characters at which the dashboard cuts an attribute.
# Four trials, not six: the dashboard caches parameter importances per process by
# (study id, objective, number of complete trials), and both storages hold study id 1.
NETWORK = """
[study]
name = "dash-network"
sampler = "grid"
seed = 5
n_trials = 4
verify = "top"
verify_top_k = 1
[objectives]
latency = "minimize"
[hardware]
LOG_BLOCK = [3, 4]
LOG_ACC_BUFF_SIZE = [15, 17]
[schedule]
trials_per_layer = 2
[constraints]
bram = 100
""" + "".join(f"""
[[workloads]]
name = "layer_{i:02d}"
op = "toy_gemm"
m = 1
n = {16 * (1 + i % 4)}
k = {32 * (1 + i // 4)}
""" for i in range(24))

STUDIES = {"pareto": PARETO, "network": NETWORK}


# ---- a browser's requests, in-process ------------------------------------------------------------

def _refuse(constant: str):
    raise ValueError(f"{constant} is not JSON: a browser's JSON.parse refuses it")


def strict_json(text: str):
    return json.loads(text, parse_constant=_refuse)


def get(app, url: str):
    """One GET through the WSGI app: (status code, content type, body text)."""
    path, _, query = url.partition("?")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "localhost",
               "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "localhost:8080",
               "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
               "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
               "wsgi.run_once": False}
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(headers)

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return int(answer["status"].split()[0]), answer["headers"].get("Content-Type", ""), body.decode()


def get_json(app, url: str):
    code, ctype, text = get(app, url)
    assert code == 200, f"GET {url}: HTTP {code}: {text[:300]}"
    assert ctype.startswith("application/json"), f"GET {url}: {ctype}"
    return strict_json(text)


# ---- the runs ----------------------------------------------------------------------------------

class Served:
    def __init__(self, spec, out):
        self.spec = spec
        self.url = f"sqlite:///{out / 'study.db'}"
        self.study = optuna.load_study(study_name=spec.name, storage=self.url)
        self.app = optuna_dashboard.wsgi(self.url)
        summaries = get_json(self.app, "/api/studies")["study_summaries"]
        self.study_id = next(s["study_id"] for s in summaries if s["study_name"] == spec.name)
        self.detail = get_json(self.app, f"/api/studies/{self.study_id}?after=0")
        self.trials = {t["number"]: t for t in self.detail["trials"]}
        table = pd.read_parquet(out / "trials.parquet")
        self.schedules = {int(r.trial): json.loads(r.schedules) for r in table.itertuples() if r.feasible}


@pytest.fixture(scope="module")
def served(ray_session, tmp_path_factory):
    out = {}
    for name, body in STUDIES.items():
        tmp = tmp_path_factory.mktemp(name)
        spec = load_study(write_study(tmp, body), ToyEvaluator.ops)
        run_study(spec, ToyEvaluator(), RunOptions(out=tmp / "out", workers=2, progress=False))
        out[name] = Served(spec, tmp / "out")
    return out


def attrs(served_trial: dict) -> dict:
    return {a["key"]: a["value"] for a in served_trial["user_attrs"]}


def served_value(text: str, stored):
    """The dashboard's text of a user attribute, read back as the stored type."""
    if isinstance(stored, str):
        return text
    if isinstance(stored, bool):
        return {"True": True, "False": False}[text]
    if isinstance(stored, (int, float)):
        return type(stored)(text)
    return json.loads(text)


BOTH = pytest.mark.parametrize("name", list(STUDIES))


# ---- the tests ---------------------------------------------------------------------------------

@BOTH
def test_every_request_of_the_study_page_is_strict_json(served, name):
    s = served[name]
    # What the front end loads for the study list and a study's page (the server-side plotly
    # plots only where plotly is installed, which is no dependency of ours).
    get_json(s.app, "/api/meta")
    get_json(s.app, "/api/studies")
    get_json(s.app, f"/api/studies/{s.study_id}?after=0")
    importances = get_json(s.app, f"/api/studies/{s.study_id}/param_importances")["param_importances"]
    assert len(importances) == len(s.spec.objectives)
    params = {k.name for k in s.spec.hardware}
    for per_objective in importances:
        assert {p["name"] for p in per_objective} == params
        assert all(math.isfinite(p["importance"]) for p in per_objective)
    # the CSV download button
    code, ctype, text = get(s.app, f"/csv/{s.study_id}")
    assert code == 200 and ctype.startswith("text/csv")
    assert len(text.strip().splitlines()) == 1 + len(s.study.trials)


@BOTH
def test_the_study_shows_its_trials_directions_and_values(served, name):
    s = served[name]
    summary = next(x for x in get_json(s.app, "/api/studies")["study_summaries"] if x["study_id"] == s.study_id)
    assert summary["directions"] == s.detail["directions"] == [d for _, d in s.spec.objectives]
    assert sorted(s.trials) == [t.number for t in s.study.trials] == list(range(s.spec.n_trials))
    for t in s.study.trials:
        shown = s.trials[t.number]
        assert shown["state"] == "Complete"
        assert {p["name"]: int(p["param_external_value"]) for p in shown["params"]} == t.params
        # the dashboard's own encoding of an infinite objective: the string "inf"
        assert shown["values"] == [v if math.isfinite(v) else "inf" for v in t.values]
    assert s.detail["best_trials"], "no best trial shown"


@BOTH
def test_objectives_are_named(served, name):
    """Without names the page says "Objective 0", "Objective 1"; the study file names them."""
    s = served[name]
    names = s.detail.get("objective_names")
    assert names is not None, "the study has no metric names (optuna.Study.set_metric_names)"
    assert len(names) == len(s.spec.objectives)
    for shown, (objective, _) in zip(names, s.spec.objectives):
        assert shown.startswith(objective), (shown, objective)


@BOTH
def test_user_attributes_are_shown_whole(served, name):
    s = served[name]
    for t in s.study.trials:
        shown = attrs(s.trials[t.number])
        assert set(shown) == set(t.user_attrs)
        for key, stored in t.user_attrs.items():
            try:
                value = served_value(shown[key], stored)
            except (ValueError, KeyError):
                value = None
            assert value == stored, (f"trial {t.number}: user attribute {key!r} is shown as "
                                     f"{shown[key][-60:]!r} ({len(shown[key])} characters), "
                                     f"stored {len(json.dumps(stored))} characters")
        if t.user_attrs["feasible"]:
            assert float(shown["latency_s"]) == t.values[0] > 0


@BOTH
def test_every_layer_schedule_is_shown(served, name):
    """The chosen knobs of each layer of a feasible trial (as in trials.parquet), as the dashboard
    shows them: in a ``schedules`` attribute and, for more layers than fit one whole, in
    ``schedules:2``, ``schedules:3``, ..."""
    s = served[name]
    feasible = [t for t in s.study.trials if t.user_attrs["feasible"]]
    assert feasible and sorted(s.schedules) == [t.number for t in feasible]
    for t in feasible:
        shown = attrs(s.trials[t.number])
        schedules = {}
        for key, text in shown.items():
            if key == "schedules" or key.startswith("schedules:"):
                try:
                    schedules.update(strict_json(text))
                except ValueError:
                    pass            # cut short: the layers it lost are missing below
        missing = sorted({w.name for w in s.spec.workloads} - set(schedules))
        assert not missing, f"trial {t.number}: no schedule shown for {len(missing)} layers: {missing}"
        assert schedules == s.schedules[t.number]


@BOTH
def test_infeasible_trials_are_shown_as_infeasible(served, name):
    s = served[name]
    kinds = set()
    for t in sorted(s.study.trials, key=lambda t: t.user_attrs["feasible"]):      # infeasible first
        shown = s.trials[t.number]["constraints"]
        feasible = t.user_attrs["feasible"]
        assert shown, (f"trial {t.number} ({'feasible' if feasible else 'infeasible'}): the dashboard shows "
                       f"no constraint, Optuna holds {t.constraints}")
        assert sorted(shown) == sorted(t.constraints.values())
        assert all(c <= 0 for c in shown) == feasible, f"trial {t.number}: {shown}"
        kinds.add("feasible" if feasible else t.user_attrs["reason"].split(":")[0])
    assert kinds == {"feasible", "hardware cannot be built", "over the resource budget"}

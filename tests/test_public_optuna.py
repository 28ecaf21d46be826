"""Our code uses Optuna through its public API only (ARCHITECTURE.md, "Public APIs of our dependencies
only"): no import from a private module or of a private name, no private attribute of an Optuna
object, no monkeypatched storage method, no SQL into Optuna's tables. A private name can move or
vanish in any release; the storage writes that once relied on them broke silently."""
from __future__ import annotations

import ast
import functools
import inspect
import re
from pathlib import Path

import optuna
import pytest

REPO = Path(__file__).resolve().parents[1]
OURS = ("dse", "compiler", "simulator", "hwconfigs", "benchmarks", "tests")
# Optuna's tables, as statements that read or write them name them.
OPTUNA_SQL = re.compile(r"\b(from|into|update|join)\s+(studies|study_\w+|trials|trial_\w+|version_info|"
                        r"alembic_version)\b", re.IGNORECASE)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@functools.lru_cache(maxsize=1)
def optuna_private_attrs() -> frozenset:
    """Every private attribute name Optuna's classes define or assign (``self._x = ...``)."""
    names = set()
    root = Path(optuna.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(node.name):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return frozenset(names)


@functools.lru_cache(maxsize=1)
def storage_methods() -> frozenset:
    """The methods of Optuna's storages, which code of ours must call, never replace."""
    return frozenset(name for name, _ in inspect.getmembers(optuna.storages.BaseStorage, inspect.isfunction)
                     if not _private(name))


def private_optuna_uses(source: str, filename: str = "<source>") -> list[str]:
    """``line: what`` for each use of Optuna's private API in ``source``."""
    found = []
    tree = ast.parse(source, filename)
    private = optuna_private_attrs()
    aliases = {"optuna"}               # names bound to optuna or one of its modules
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "optuna":
                    aliases.add((alias.asname or alias.name).split(".")[0])
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "optuna":
            if any(_private(part) for part in node.module.split(".")):
                found.append(f"{node.lineno}: from {node.module} import ...")
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                else:
                    aliases.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            receiver = node.value
            root = receiver
            while isinstance(root, ast.Attribute):
                root = root.value
            own = isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")
            if isinstance(root, ast.Name) and root.id in aliases:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
            elif node.attr in private and not own:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("getattr", "hasattr", "setattr", "delattr") and len(node.args) >= 2:
            name = node.args[1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and name.value in private:
                found.append(f"{node.lineno}: {node.func.id}(..., {name.value!r})")
        elif isinstance(node, (ast.Assign, ast.Delete)):
            for target in (node.targets if isinstance(node, (ast.Assign, ast.Delete)) else []):
                if isinstance(target, ast.Attribute) and target.attr in storage_methods() and not (
                        isinstance(target.value, ast.Name) and target.value.id in ("self", "cls")):
                    found.append(f"{node.lineno}: {ast.unparse(target)} replaced")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and OPTUNA_SQL.search(node.value):
            found.append(f"{node.lineno}: SQL on Optuna's tables: {node.value[:60]!r}")
    return found


def test_no_module_of_ours_uses_optunas_private_api():
    found = []
    for folder in OURS:
        for path in sorted((REPO / folder).rglob("*.py")):
            if path == Path(__file__).resolve():       # its examples of private uses, below
                continue
            uses = private_optuna_uses(path.read_text(encoding="utf-8"), str(path))
            found += [f"{path.relative_to(REPO)}:{use}" for use in uses]
    assert not found, "Optuna's private API used:\n" + "\n".join(found)


# What the storage path of the driver once did, one line each: every one must be caught.
PRIVATE_USES = [
    "from optuna.storages._cached_storage import _CachedStorage",
    "from optuna.storages._rdb import models",
    "from optuna.study._tell import _tell_with_warning",
    "import optuna.storages._heartbeat",
    "from optuna import pruners\npruners._filter_study(study, frozen)",
    "import optuna\nx = optuna.storages._CachedStorage",
    "study._storage.record_heartbeat(trial._trial_id)",
    "ids = study._storage._get_stale_trial_ids(study._study_id)",
    "frozen = trial._cached_frozen_trial",
    "pop = getattr(study, '_pop_waiting_trial_id', None)",
    "study._thread_local.cached_all_trials = None",
    "storage.get_trial = lambda trial_id: frozen",
    "del storage.set_trial_param",
    "conn.execute(text('UPDATE trials SET state = 1 WHERE trial_id = 3'))",
    "query = 'SELECT value_json FROM trial_user_attributes'",
]


@pytest.mark.parametrize("source", PRIVATE_USES)
def test_each_kind_of_private_use_is_caught(source):
    assert private_optuna_uses(source)


@pytest.mark.parametrize("source", [
    "import optuna\nstudy = optuna.create_study()\ntrial = study.ask()\nstudy.tell(trial, 1.0)",
    "optuna.storages.fail_stale_trials(study)",
    "storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number))",
    "class S(optuna.samplers.BaseSampler):\n    def f(self):\n        return self._rng",
    "self._storage = storage",
    "query = 'SELECT count(*) FROM information_schema.tables'",
])
def test_public_use_is_not_flagged(source):
    assert private_optuna_uses(source) == []

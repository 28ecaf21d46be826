"""The flight record of a layer job: which candidate its worker is evaluating, readable by the driver
once the worker has died (its last messages die with it) or while it hangs past a timeout.

Before each evaluation the worker overwrites a small file on its own node (tens of microseconds).
Once per job, at its start, it stores in Ray's cluster key-value store where that file is (node
and path): a job without that entry has not started, so no timeout runs for it. The driver reads
the file directly when it is on the driver's node, otherwise through a task pinned to that node.
(Writing every record to the key-value store instead cost ~0.7 ms of the worker's CPU and ~0.5 ms
of the GCS server's per candidate, on the cores the evaluations need.) Where no file can be
written, every record goes to the key-value store as before.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

NAMESPACE = "vta-dse"
PREPARING = -1          # the record of a job that started but evaluates no candidate yet
READ_TIMEOUT_S = 10.0   # reading a record on another node


def _folder() -> Path:
    base = os.environ.get("VTA_DSE_FLIGHT_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir())
    return Path(base) / "vta-dse-flight"


def _kv():
    import ray
    from ray.experimental import internal_kv

    return internal_kv if ray.is_initialized() else None


def _write_file(path: Path, record) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)        # a reader never sees half a record


def _read_file(path: str):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class FlightRecorder:
    """The worker's side: ``record(index, knobs)`` before each evaluation, ``close()`` at the end.
    Records nothing outside Ray (tests run jobs directly) or without a key."""

    def __init__(self, key: str):
        self.key = key
        self.kv = _kv() if key else None
        self.path: Path | None = None
        if self.kv is None:
            return
        import ray

        node = ray.get_runtime_context().get_node_id()
        try:
            folder = _folder()
            folder.mkdir(parents=True, exist_ok=True)
            self.path = folder / (hashlib.sha1(key.encode()).hexdigest() + ".json")
            _write_file(self.path, [PREPARING, None])
            where = {"node": node, "file": str(self.path)}
        except OSError:
            self.path = None
            where = {"node": node, "record": [PREPARING, None]}
        self._put(where)

    def _put(self, value: dict) -> None:
        try:
            self.kv._internal_kv_put(self.key.encode(), json.dumps(value).encode(), overwrite=True,
                                     namespace=NAMESPACE)
        except Exception:      # an older Ray: no record
            self.kv = None

    def record(self, index: int, knobs: dict) -> None:
        if self.kv is None:
            return
        if self.path is not None:
            _write_file(self.path, [index, knobs])
        else:
            self._put({"record": [index, knobs]})

    def close(self) -> None:
        if self.kv is None:
            return
        if self.path is not None:
            _unlink(str(self.path))
        _delete(self.key)


def _where(key: str) -> dict | None:
    kv = _kv() if key else None
    if kv is None:
        return None
    try:
        raw = kv._internal_kv_get(key.encode(), namespace=NAMESPACE)
        return None if raw is None else json.loads(raw)
    except Exception:
        return None


def read_flight(key: str) -> tuple[int, dict] | None:
    """The candidate a job's worker was on when last heard of: ``(index, knobs)``, with index
    ``PREPARING`` when it evaluates none yet or its record cannot be read (its node is gone);
    None when the job has not started."""
    where = _where(key)
    if where is None:
        return None
    record = where.get("record")
    if record is None and where.get("file"):
        record = _read_on_node(where["node"], where["file"])
    if not record:
        return PREPARING, {}
    index, knobs = record
    return int(index), knobs or {}


def _read_on_node(node: str, path: str):
    import ray

    if node == ray.get_runtime_context().get_node_id():
        return _read_file(path)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    reader = ray.remote(num_cpus=0, max_retries=0)(_read_file)
    try:
        ref = reader.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(path)
        return ray.get(ref, timeout=READ_TIMEOUT_S)
    except Exception:          # the node is gone, or too busy to answer
        return None


def clear_flight(key: str) -> None:
    """Forget a job's record (the driver giving the job up). A record on another node stays
    there: a few bytes in its temporary folder."""
    where = _where(key)
    if where is None:
        return
    if where.get("file"):
        import ray

        if where["node"] == ray.get_runtime_context().get_node_id():
            _unlink(where["file"])
    _delete(key)


def _unlink(path: str) -> None:
    for name in (path, path + ".tmp"):
        try:
            os.unlink(name)
        except OSError:
            pass


def _delete(key: str) -> None:
    try:
        _kv()._internal_kv_del(key.encode(), namespace=NAMESPACE)
    except Exception:
        pass

"""The flight record: what a layer job's worker is evaluating, as the driver reads it back."""
import json

from dse import _flight
from dse._flight import PREPARING, FlightRecorder, clear_flight, read_flight


def test_outside_ray_nothing_is_recorded():   # first: before this module's Ray session starts
    recorder = FlightRecorder("test:no-ray")
    recorder.record(1, {})
    recorder.close()
    assert recorder.kv is None


def test_a_record_written_in_a_worker_is_read_by_the_driver(ray_session):
    ray = ray_session

    @ray.remote(num_cpus=1)
    def evaluating(key):
        recorder = FlightRecorder(key)
        recorder.record(3, {"tile_n": [2, 8]})
        return str(recorder.path)

    path = ray.get(evaluating.remote("test:worker"))
    assert read_flight("test:worker") == (3, {"tile_n": [2, 8]})
    clear_flight("test:worker")                    # the driver gives the job up
    assert read_flight("test:worker") is None
    assert not _flight.Path(path).exists()


def test_a_job_is_preparing_until_its_first_candidate_and_unknown_after_it_ends(ray_session):
    assert read_flight("test:never-started") is None
    recorder = FlightRecorder("test:lifecycle")
    assert read_flight("test:lifecycle") == (PREPARING, {})
    recorder.record(0, {"a": 1})
    recorder.record(5, {"a": 2})                   # each record replaces the last
    assert read_flight("test:lifecycle") == (5, {"a": 2})
    recorder.close()
    assert read_flight("test:lifecycle") is None and not recorder.path.exists()


def test_a_record_whose_node_is_gone_still_says_the_job_started(ray_session):
    from ray.experimental import internal_kv

    where = {"node": "ff" * 28, "file": "/nonexistent/record.json"}     # no such node
    internal_kv._internal_kv_put(b"test:lost", json.dumps(where).encode(), namespace=_flight.NAMESPACE)
    assert read_flight("test:lost") == (PREPARING, {})
    clear_flight("test:lost")
    assert read_flight("test:lost") is None


def test_without_a_writable_folder_the_records_go_to_the_key_value_store(ray_session, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("VTA_DSE_FLIGHT_DIR", str(blocker))
    recorder = FlightRecorder("test:no-folder")
    assert recorder.path is None
    recorder.record(4, {"b": 3})
    assert read_flight("test:no-folder") == (4, {"b": 3})
    recorder.close()
    assert read_flight("test:no-folder") is None



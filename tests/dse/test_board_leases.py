"""One candidate per board at a time: across threads of a process and across Ray workers."""
from __future__ import annotations

import threading
import time

import pytest

import hwconfigs
from compiler import workloads
from dse.board import BoardError, BoardPool, BoardServer, SimDevice
from dse.board import _lease

TOKEN = "test-token-0123456789"
ENV = hwconfigs.get_env()
LAYER = workloads.Conv2D(batch=1, height=8, width=8, in_channels=32, out_channels=32, kernel=3, stride=1, pad=1)


class CountingServer(BoardServer):
    """A board that records how many connections it serves at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._count_lock = threading.Lock()
        self.active = self.max_active = self.served = 0

    def _handle(self, sock, peer):
        with self._count_lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(0.02)          # widen the window in which a second candidate could arrive
            super()._handle(sock, peer)
        finally:
            with self._count_lock:
                self.active -= 1
                self.served += 1


def _call(boards, timeout_s=120.0):
    module = workloads.build(LAYER, env=ENV)
    args = [*workloads.random_inputs(LAYER, ENV), workloads.empty_output(LAYER, ENV)]
    return BoardPool(boards, TOKEN).run_module(module, args, timeout_s=timeout_s).board


def test_threads_share_the_boards_one_candidate_each():
    with CountingServer(SimDevice(), TOKEN, port=0).start() as a, CountingServer(SimDevice(), TOKEN, port=0).start() as b:
        boards = [a.address, b.address]
        used = []
        threads = [threading.Thread(target=lambda: used.append(_call(boards))) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert len(used) == 6 and set(used) == set(boards)
        deadline = time.monotonic() + 5                   # a handler counts after its reply is sent
        while a.served + b.served < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert a.served + b.served == 6
        assert a.max_active == 1 and b.max_active == 1


def test_no_free_board_within_the_timeout():
    boards = ["127.0.0.1:9"]
    leases = _lease.Leases()
    held = leases.try_lease(boards)
    try:
        module = workloads.build(LAYER, env=ENV)
        args = [*workloads.random_inputs(LAYER, ENV), workloads.empty_output(LAYER, ENV)]
        start = time.monotonic()
        with pytest.raises(BoardError) as caught:
            BoardPool(boards, TOKEN).run_module(module, args, timeout_s=0.3)
        assert caught.value.reason == "timeout" and "free" in str(caught.value)
        assert time.monotonic() - start < 2
    finally:
        leases.release(*held)


def test_a_lease_prefers_boards_not_tried_and_pools_share_boards():
    leases = _lease.Leases()
    first = leases.try_lease(["a:1", "b:2"], avoid=["a:1"])
    assert first[0] == "b:2"
    second = leases.try_lease(["b:2", "c:3"])              # another pool's list naming b too
    assert second[0] == "c:3"
    assert leases.try_lease(["b:2", "c:3"]) is None
    for got in (first, second):
        leases.release(*got)


def test_a_killed_holder_loses_its_lease(tmp_path):
    """The host lock belongs to the process: killed while holding it, the board is free again."""
    import subprocess
    import sys

    from tests.dse.conftest import subprocess_env

    holder = subprocess.Popen([sys.executable, "-c", "from dse.board import _lease; import sys, time; "
                               "assert _lease.Leases().try_lease(['k:1']); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        assert _lease.Leases().try_lease(["k:1"]) is None
        holder.kill()
        holder.wait()
        got = _lease.Leases().try_lease(["k:1"])
        assert got is not None
        _lease.Leases().release(*got)
    finally:
        holder.kill()


def test_a_cluster_lease_expires(monkeypatch):
    monkeypatch.setattr(_lease, "EXPIRY_MARGIN_S", 0.0)
    book = _lease.LeaseBook()
    first = book.try_lease("x:1", ttl_s=0.05)
    assert first is not None and book.try_lease("x:1", 10) is None
    time.sleep(0.1)                                     # its holder died without releasing it
    second = book.try_lease("x:1", 10)
    assert second is not None
    book.release("x:1", first)                          # a stale release does not free the new lease
    assert book.try_lease("x:1", 10) is None


@pytest.mark.slow
def test_ray_workers_share_the_boards_one_candidate_each(ray_session):
    ray = ray_session
    with CountingServer(SimDevice(), TOKEN, port=0).start() as board:
        call = ray.remote(num_cpus=1)(_call)
        used = ray.get([call.remote([board.address]) for _ in range(4)], timeout=300)
        assert used == [board.address] * 4
        assert board.max_active == 1
        # The cluster book alone (no host lock held) keeps a worker off a leased board.
        cluster = _lease.ClusterLeases(ray)
        lease = cluster.try_board(board.address, 60)
        assert lease is not None
        try:
            with pytest.raises(BoardError, match="free"):
                ray.get(call.remote([board.address], 1.0), timeout=300)
        finally:
            cluster.release(board.address, lease)

"""Crash isolation (dse._isolation): a function run in a long-lived child process, whatever the
function does to that process."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from dse._isolation import ChildStartError, Isolated, describe_exit
from tests.dse._faulty import act
from tests.dse.conftest import REPO, subprocess_env

class _Unimportable:
    """Unpickles into an import of a module that does not exist (an evaluator that cannot import)."""

    def __reduce__(self):
        return __import__, ("no_such_module_of_vta_dse",)


@pytest.fixture
def child():
    with Isolated(act) as isolated:
        yield isolated


def test_answers_come_back_and_the_child_lives_on(child):
    assert child.run("x", 10).value == "x"
    pid = child.pid
    assert [child.run("count", 10).value for _ in range(3)] == [1, 2, 3]
    outcome = child.run("raise", 10)
    assert (outcome.kind, outcome.error) == ("raised", "ValueError: bad candidate")
    outcome = child.run("unpicklable", 10)
    assert outcome.kind == "raised" and "cannot be sent back" in outcome.error
    assert child.run("pid", 10).value == pid and child.starts == 1


@pytest.mark.parametrize("what", ["sleep", "deaf"])
def test_a_call_past_its_timeout_is_killed_on_time(child, what):
    first = child.run("pid", 10).value
    t0 = time.perf_counter()
    outcome = child.run(what, 0.5)
    took = time.perf_counter() - t0
    assert outcome.kind == "timeout" and "0.5 s" in outcome.error
    assert 0.5 <= took < 0.5 + 1.0
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)                       # killed and reaped
    assert child.run("pid", 10).value != first and child.starts == 2


@pytest.mark.parametrize("what, cause", [("segfault", "was killed by SIGSEGV"), ("exit", "exited with code 17")])
def test_a_call_that_kills_its_process_is_a_death_named_by_its_cause(child, what, cause):
    outcome = child.run(what, 10)
    assert (outcome.kind, outcome.error) == ("died", cause)
    assert child.run("y", 10).value == "y" and child.starts == 2


def test_a_new_child_is_warmed_up_before_its_first_call_is_timed(child):
    assert child.run(("warm", "a"), 10).value == "a"        # the first child pays its cache load
    assert child.run("sleep", 0.5).kind == "timeout"
    # the next child loads its cache on the last answered call, before this call's timeout runs
    assert child.run(("warm", "b"), 0.5).value == "b" and child.starts == 2


def test_a_kill_from_outside_mid_call_is_a_death(child):
    pid = child.run("pid", 10).value
    threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
    outcome = child.run("sleep", 60)
    assert (outcome.kind, outcome.error) == ("died", "was killed by SIGKILL")
    assert child.run("z", 10).value == "z"


def test_a_child_killed_while_idle_does_not_fail_the_next_call(child):
    pid = child.run("pid", 10).value
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    assert child.run("after", 10).value == "after" and child.starts == 2


def test_an_item_that_cannot_be_sent_is_its_own_failure(child):
    pid = child.run("pid", 10).value
    outcome = child.run(lambda: None, 10)
    assert outcome.kind == "raised" and "cannot be sent" in outcome.error
    assert child.run("pid", 10).value == pid


def test_a_call_interrupted_in_the_parent_never_answers_the_next_one(child):
    child.run("pid", 10)
    threading.Timer(0.3, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)).start()   # Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        child.run("sleep", 60)
    assert child.run("next", 10).value == "next" and child.starts == 2


def test_a_child_that_cannot_start_fails_clearly_after_a_few_tries():
    isolated = Isolated(_Unimportable(), start_tries=3)
    with pytest.raises(ChildStartError, match="failed to start 3 times in a row.*no_such_module_of_vta_dse"):
        isolated.run("x", 10)
    assert isolated.starts == 3 and isolated.pid is None


PARENT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from dse._isolation import Isolated
from tests.dse._faulty import act
child = Isolated(act)
print(child.run("pid", 60).value, flush=True)
child.run("deaf", 3600)
"""


def test_the_child_dies_with_its_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(REPO)], stdout=subprocess.PIPE, text=True,
                              env=subprocess_env(), cwd=REPO)
    try:
        pid = int(parent.stdout.readline())
        time.sleep(0.3)                          # the child is in its deaf call
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"     # a zombie is dead, not yet reaped
    except FileNotFoundError:
        return False


def test_exit_codes_in_words():
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-200) == "was killed by signal 200"

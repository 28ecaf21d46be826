"""TEST DOUBLE of tests/dse/test_isolation.py: what a child process is asked to do, in a module of
its own so that a child starts by importing nothing else."""
import os
import signal
import time

_STATE: list = []


def act(what):
    """What the child is asked to do (a module-level function: the child imports it by name)."""
    if what == "pid":
        return os.getpid()
    if what == "count":                 # state kept from one call to the next
        _STATE.append(1)
        return len(_STATE)
    if what == "raise":
        raise ValueError("bad candidate")
    if what == "sleep":
        time.sleep(3600)
    if what == "deaf":                  # like native code: no signal but SIGKILL ends it
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM, signal.SIGINT})
        time.sleep(3600)
    if what == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if what == "exit":
        os._exit(17)
    if isinstance(what, tuple):          # ("warm", x): the first call of a process loads a cache
        if not _STATE:
            time.sleep(1.5)
            _STATE.append(1)
        return what[1]
    if what == "unpicklable":
        return lambda: None
    return what

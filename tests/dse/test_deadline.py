"""The runners' time limit (``dse.runners.deadline``): it fires, it nests under a caller's alarm
(the layer job's), and it leaves the caller's handler and timer as it found them."""
from __future__ import annotations

import signal
import time

import pytest

from dse.runners import Timeout, deadline


class _Outer(BaseException):
    pass


def _outer(signum, frame):
    raise _Outer()


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.fixture
def outer_alarm():
    previous = signal.signal(signal.SIGALRM, _outer)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_a_deadline_fires_and_disarms():
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(Timeout):
        with deadline(0.05):
            _spin(5)
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    with deadline(5):
        pass
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0 and signal.getsignal(signal.SIGALRM) is before


def test_a_callers_earlier_alarm_decides(outer_alarm):
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    with pytest.raises(_Outer):
        with deadline(5):
            _spin(5)


def test_a_shorter_deadline_fires_first_and_the_callers_alarm_still_runs(outer_alarm):
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    with pytest.raises(Timeout):
        with deadline(0.05):
            _spin(5)
    left = signal.getitimer(signal.ITIMER_REAL)[0]
    assert 0 < left < 0.5 and signal.getsignal(signal.SIGALRM) is _outer
    with pytest.raises(_Outer):
        _spin(5)

"""The progress wait of a traffic run: one tick per interval, whichever thread ends first."""

from __future__ import annotations

import threading
import time

from xdptest.traffic import wait_for_threads


def test_a_thread_that_ended_first_does_not_make_the_wait_spin() -> None:
    done = threading.Thread(target=lambda: None)  # like queue 0's sender finishing first
    slow = threading.Thread(target=time.sleep, args=(0.5,))
    for t in (done, slow):
        t.start()
    done.join()
    ticks: list[float] = []
    started = time.monotonic()
    wait_for_threads([done, slow], 0.1, lambda: ticks.append(time.monotonic()))
    assert not slow.is_alive()
    assert 0.45 <= time.monotonic() - started < 2
    assert 3 <= len(ticks) <= 7, len(ticks)  # about 0.5 s / 0.1 s, not thousands


def test_no_threads_alive_returns_at_once_without_a_tick() -> None:
    ticks: list[int] = []
    wait_for_threads([], 0.1, lambda: ticks.append(1))
    assert ticks == []

"""Ctrl-C in map and imap: dispatching stops, the pool's queued work is cancelled,
KeyboardInterrupt is raised, and the pool is still usable."""
import os
import signal
import threading
import time

import pytest

import mathpool


def interrupt_after(seconds):
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("how", ["map", "imap"])
def test_ctrl_c(how, start, testkit):
    with mathpool.Pool(workers=2, start=start, plugin_path=testkit) as pool:
        # 400 tasks of 100 ms on 2 workers: 20 s if nothing stopped them.
        params = ({"i": i, "fault": "sleep", "ms": 100} for i in range(400))
        began = time.monotonic()
        timer = interrupt_after(0.5)
        got = []
        with pytest.raises(KeyboardInterrupt):
            if how == "map":
                pool.map("testkit.echo", params)
            else:
                for r in pool.imap("testkit.echo", params):
                    got.append(r)
        timer.join()
        elapsed = time.monotonic() - began
        assert elapsed < 5, elapsed  # not the 20 s the tasks would take
        assert got == [{"i": i, "fault": "sleep", "ms": 100} for i in range(len(got))]
        # The pool's queue is empty again and it takes new work.
        deadline = time.monotonic() + 10
        while pool.stats()["queued"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.stats()["queued"] == 0
        assert pool.map("testkit.echo", [{"x": 1}, {"x": 2}]) == [{"x": 1}, {"x": 2}]

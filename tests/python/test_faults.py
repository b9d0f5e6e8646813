"""A crash, a timeout or a memory fault in the middle of 100k tasks: every other result
comes back, in order, and the faulty task raises (or is returned) in its place."""
import pytest

import mathpool

N = 100_000
MIDDLE = 50_000

CASES = {
    "crash": (mathpool.Crashed, {}),
    "spin": (mathpool.Timeout, {"task_timeout": "1s"}),
    "allocate": (mathpool.MemoryLimit, {"memory_limit": "512MiB"}),
}


def tasks(fault):
    for i in range(N):
        yield {"i": i, "fault": fault} if i == MIDDLE else {"i": i}


@pytest.mark.parametrize("fault", list(CASES))
def test_one_fault_among_100k_tasks(fault, start, testkit):
    cls, options = CASES[fault]
    with mathpool.Pool(workers=2, start=start, plugin_path=testkit, **options) as pool:
        seen = 0
        it = pool.imap("testkit.echo", tasks(fault))
        for i in range(N):
            if i == MIDDLE:
                with pytest.raises(cls) as e:
                    next(it)
                assert e.value.task["index"] == MIDDLE and e.value.task["params"]["fault"] == fault
            else:
                assert next(it) == {"i": i}
                seen += 1
        with pytest.raises(StopIteration):
            next(it)
        assert seen == N - 1
        s = pool.stats()
        assert s["tasks_failed"] == 1 and s["tasks_ok"] == N - 1


def test_errors_return_puts_the_fault_in_place(testkit):
    with mathpool.Pool(workers=2, plugin_path=testkit) as pool:
        out = list(pool.imap("testkit.echo", tasks("crash"), errors="return"))
    assert len(out) == N
    assert isinstance(out[MIDDLE], mathpool.Crashed)
    assert all(out[i] == {"i": i} for i in range(N) if i != MIDDLE)

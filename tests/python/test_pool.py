"""mathpool.Pool: submit, map, imap, stats, shutdown, options, acquire, fork; both start modes."""
import concurrent.futures as cf
import os
import pathlib

import pytest

import mathpool


def test_submit_gives_concurrent_futures(start):
    with mathpool.Pool(workers=2, start=start) as pool:
        futures = [pool.submit("example.sum", {"values": [i, i], "offset": 1}) for i in range(50)]
        assert all(isinstance(f, cf.Future) for f in futures)
        done = {futures.index(f): f.result() for f in cf.as_completed(futures, timeout=60)}
        assert done == {i: {"sum": 2 * i + 1, "count": 2} for i in range(50)}
        finished, not_done = cf.wait(futures, timeout=60)
        assert len(finished) == 50 and not not_done
        called = []
        f = pool.submit("example.echo", {"x": 1})
        f.add_done_callback(lambda fut: called.append(fut.result()))
        f.result()
        cf.wait([f])
        assert f.done()


def test_map_and_imap_keep_order(start, testkit):
    with mathpool.Pool(workers=2, start=start, plugin_path=testkit) as pool:
        params = [{"x": i, "fault": "sleep", "ms": (7 * i) % 5} for i in range(40)]
        assert pool.map("testkit.echo", params) == params
        assert list(pool.imap("testkit.echo", iter(params), chunksize=3, window=4)) == params
        assert pool.map("example.echo", []) == []
        assert list(pool.imap("example.echo", ())) == []


def test_a_failed_task_raises_in_place_and_imap_goes_on(start, testkit):
    with mathpool.Pool(workers=2, start=start, plugin_path=testkit) as pool:
        params = [{"x": 0}, {"x": 1, "fault": "throw"}, {"x": 2}, {"x": 3, "fault": "invalid"}, {"x": 4}]
        it = pool.imap("testkit.echo", params)
        assert next(it) == {"x": 0}
        with pytest.raises(mathpool.PluginError) as e:
            next(it)
        assert e.value.kind == "plugin_error" and "asked to fail" in e.value.message
        assert e.value.task["index"] == 1 and e.value.task["params"] == params[1]
        assert e.value.task["analysis"] == "testkit.echo" and e.value.task["status"] == "error"
        assert next(it) == {"x": 2}
        with pytest.raises(mathpool.InvalidParams, match="parameter 'fault': asked to refuse"):
            next(it)
        assert next(it) == {"x": 4}
        with pytest.raises(StopIteration):
            next(it)

        out = list(pool.imap("testkit.echo", params, errors="return"))
        assert [type(o) for o in out] == [dict, mathpool.PluginError, dict, mathpool.InvalidParams, dict]
        assert isinstance(out[1], mathpool.TaskError) and isinstance(out[1], mathpool.Error)

        with pytest.raises(mathpool.PluginError):  # the first failure in order
            pool.map("testkit.echo", params)
        out = pool.map("testkit.echo", params, errors="return")
        assert out[0] == params[0] and isinstance(out[3], mathpool.InvalidParams)
        with pytest.raises(ValueError, match="errors must be"):
            pool.map("testkit.echo", params, errors="ignore")


def test_error_kinds_are_exception_classes(start, testkit):
    # 3 s: filling 512 MiB takes 1.4-1.6 s on this project's VM (slow page faults), so
    # "allocate" must reach the memory limit well before "spin" reaches the time limit.
    with mathpool.Pool(workers=1, start=start, plugin_path=testkit, task_timeout="3s",
                       memory_limit="512MiB", retries=0) as pool:
        cases = {"crash": mathpool.Crashed, "spin": mathpool.Timeout, "allocate": mathpool.MemoryLimit,
                 "throw": mathpool.PluginError, "invalid": mathpool.InvalidParams}
        futures = {fault: pool.submit("testkit.echo", {"fault": fault}) for fault in cases}
        for fault, cls in cases.items():
            e = futures[fault].exception(timeout=60)
            assert type(e) is cls, (fault, e)
            assert e.kind == cls.kind and e.message and e.task["params"] == {"fault": fault}
            assert e.task["index"] is None and e.task["worker"] > 0
        assert pool.submit("testkit.echo", {"x": 1}).result() == {"x": 1}  # the pool goes on
        with pytest.raises(mathpool.InvalidParams, match="unknown analysis 'no.such_analysis'"):
            pool.submit("no.such_analysis", {}).result()


def test_stats_is_a_dict(start):
    with mathpool.Pool(workers=2, start=start) as pool:
        pool.map("example.echo", [{"x": i} for i in range(100)])
        s = pool.stats()
        assert s["tasks_ok"] == 100 and s["tasks_failed"] == 0 and s["queued"] == 0
        assert len(s["workers"]) == 2 and all(w["pid"] > 0 for w in s["workers"])
        assert s["analyses"]["example.echo"]["tasks_ok"] == 100
        assert (s["template_pid"] > 0) == (start == "zygote")
        assert pool.size == 2 and pool.serving
        assert {a["name"] for a in pool.analyses()} >= {"example.echo", "lfsr.cycles"}


def test_shutdown(start, testkit):
    pool = mathpool.Pool(workers=1, start=start, plugin_path=testkit)
    f = pool.submit("testkit.echo", {"fault": "sleep", "ms": 300})
    pool.shutdown()  # waits for submitted tasks
    assert f.result(timeout=0) == {"fault": "sleep", "ms": 300}
    assert not pool.serving
    with pytest.raises(mathpool.Error, match="shut down"):
        pool.submit("example.echo", {})
    pool.shutdown()  # idempotent

    pool = mathpool.Pool(workers=1, start=start, plugin_path=testkit)
    f = pool.submit("testkit.echo", {"fault": "sleep", "ms": 20000})
    pool.shutdown(grace=0.2)  # then stopped
    assert isinstance(f.exception(timeout=10), mathpool.Crashed)


def test_pool_options_are_the_configs(testkit, tmp_path):
    with mathpool.Pool(workers="auto", start="spawn", isolation="task", task_timeout=30, memory_limit="2GiB",
                       max_tasks_per_worker=100, retries=2, chunk_size="auto", setup_timeout="1m",
                       plugin_path=pathlib.Path(testkit[0]), allow_insecure_plugins=False) as pool:
        assert pool.submit("testkit.pid", {}).result()["pid"] > 0
    with mathpool.Pool(workers=1, task_timeout=None, memory_limit=None, plugin_path=testkit[0]) as pool:
        assert pool.map("testkit.echo", [{"a": 1}]) == [{"a": 1}]


@pytest.mark.parametrize("options, message", [
    ({"wrokers": 2}, "unknown pool option 'wrokers' (expected one of: workers, start, isolation, task_timeout, "
                     "memory_limit, max_tasks_per_worker, retries, chunk_size, setup_timeout, plugin_path, "
                     "allow_insecure_plugins)"),
    ({"workers": 0}, "pool option 'workers': must be at least 1, got 0"),
    ({"workers": "many"}, "pool option 'workers': must be an integer >= 1 or \"auto\", got \"many\""),
    ({"workers": 2.5}, "pool option 'workers': must be an integer >= 1 or \"auto\", got 2.5"),
    ({"start": "fork"}, "pool option 'start': \"fork\" is not one of: zygote, spawn"),
    ({"task_timeout": "soon"}, "pool option 'task_timeout': 'soon' is not a duration"),
    ({"task_timeout": -1}, "pool option 'task_timeout': '-1' is not a duration"),
    ({"memory_limit": "lots"}, "pool option 'memory_limit': 'lots' is not a memory size"),
    ({"memory_limit": 1000}, "pool option 'memory_limit': '1000' is below 1MiB"),
    ({"setup_timeout": None}, "pool option 'setup_timeout': must be a duration"),
    ({"retries": True}, "pool option 'retries': must be an integer >= 0, got true"),
    ({"allow_insecure_plugins": 1}, "pool option 'allow_insecure_plugins': must be True or False, got 1"),
])
def test_bad_pool_options_name_the_key(options, message):
    with pytest.raises(mathpool.Error) as e:
        mathpool.Pool(**options)
    assert e.value.kind == "invalid_config"
    assert str(e.value).startswith(message), str(e.value)


def test_a_plugin_path_that_does_not_load_is_an_error(tmp_path):
    with pytest.raises(mathpool.Error) as e:
        mathpool.Pool(workers=1, plugin_path=[tmp_path / "missing.so"])
    assert e.value.kind and str(e.value)


def test_acquire_leases_a_warm_pool(start):
    with mathpool.acquire(workers=1, start=start) as pool:
        assert pool.leased and pool.submit("example.echo", {"x": 1}).result() == {"x": 1}
        pids = [w["pid"] for w in pool.stats()["workers"]]
    assert not pool.serving  # this object let go of its lease
    with mathpool.acquire(workers=1, start=start) as again:
        assert again.map("example.echo", [{"y": 2}]) == [{"y": 2}]
        # The same pool, still warm: its workers are the same processes.
        assert [w["pid"] for w in again.stats()["workers"]] == pids


def test_a_forked_child_gets_a_clear_error(start):
    with mathpool.Pool(workers=1, start=start) as pool:
        assert pool.submit("example.echo", {}).result() == {}
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its parent's pool refuses it at once
            code = 3
            try:
                pool.submit("example.echo", {"x": 1})
                code = 1
            except mathpool.Error as e:
                os.write(write, str(e).encode())
                code = 0 if "a forked child must create a pool of its own" in str(e) else 2
            finally:
                os._exit(code)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        message = os.read(read, 4096).decode()
        os.close(read)
        assert os.waitstatus_to_exitcode(status) == 0, message
        assert message == f"this pool belongs to process {os.getpid()}; a forked child must create a pool of its own"
        assert pool.submit("example.echo", {"x": 2}).result() == {"x": 2}  # the parent's still works

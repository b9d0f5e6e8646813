"""Python's multiprocessing Pool, the reference for pool_bench.

  py_pool_bench.py overhead N REPS CHUNKSIZE   -> one line: JSON list of seconds per map
  py_pool_bench.py e2e N OUTPUT                -> a whole run (timed from outside)
  py_pool_bench.py imap N OUTPUT               -> a streamed run: imap(chunksize=1000) over a generator

Both use the fork context and 2 workers, and map an identity function over
small dicts {"x": i}, as the mathpool side maps example.echo.
"""
import json
import multiprocessing as mp
import sys
import time


def identity(x):
    return x


def overhead(n, reps, chunksize):
    ctx = mp.get_context("fork")
    params = [{"x": i} for i in range(n)]
    with ctx.Pool(2) as pool:
        pool.map(identity, params[:1000], chunksize=chunksize)  # warm up
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            pool.map(identity, params, chunksize=chunksize)
            times.append(time.perf_counter() - start)
    print(json.dumps(times))


def e2e(n, output):
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        results = pool.map(identity, [{"x": i} for i in range(n)], chunksize=1)
    with open(output, "w") as out:
        for i, r in enumerate(results):
            out.write(json.dumps({"task": i, "status": "ok", "result": r}) + "\n")


def imap_run(n, output):
    # The records mathpool writes, field for field.
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool, open(output, "w") as out:
        params = ({"x": i} for i in range(n))
        for i, r in enumerate(pool.imap(identity, params, chunksize=1000)):
            out.write(json.dumps({"run": "echo", "analysis": "example.echo", "task": i, "repeat": 0,
                                  "params": {"x": i}, "status": "ok", "result": r, "worker": 0,
                                  "seconds": 0.0}, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "overhead":
        overhead(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "e2e":
        e2e(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "imap":
        imap_run(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit("usage: py_pool_bench.py overhead N REPS CHUNKSIZE | e2e N OUTPUT | imap N OUTPUT")

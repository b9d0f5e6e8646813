"""Python's multiprocessing Pool, the reference for pool_bench.

  py_pool_bench.py overhead N REPS CHUNKSIZE   -> one line: JSON list of seconds per map
  py_pool_bench.py e2e N OUTPUT                -> a whole run (timed from outside)

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


if __name__ == "__main__":
    if sys.argv[1] == "overhead":
        overhead(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "e2e":
        e2e(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit("usage: py_pool_bench.py overhead N REPS CHUNKSIZE | e2e N OUTPUT")

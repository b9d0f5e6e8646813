"""A million tasks through imap over a generator in constant memory."""
import resource

import mathpool

N = 1_000_000


def test_a_million_tasks_in_constant_memory():
    with mathpool.Pool(workers=2) as pool:
        total = 0
        count = 0
        for r in pool.imap("example.echo", ({"x": i, "s": "abc"} for i in range(N))):
            total += r["x"]
            count += 1
    assert count == N and total == N * (N - 1) // 2
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    print(f"peak RSS of the Python process: {peak_mb:.1f} MB")
    assert peak_mb < 100, peak_mb

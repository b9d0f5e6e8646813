#!/usr/bin/env python3
"""The primitive census of degrees 12 to 16 over GF(2), from Python (a notebook cell).

Every register s(n+d) = c0 s(n) + ... + c(d-1) s(n+d-1) with c0 = 1, of each
degree d from 12 to 16 (2^(d-1) registers, 63,488 in all), through one warm
pool; counts the primitive characteristic polynomials, which are 144, 630,
756, 1800 and 2048 (OEIS A011260). The same census as
configs/census12to16.yaml, without a YAML file or a shell.

    PYTHONPATH=build/python python3 framework/examples/census.py

In SageMath the parameters may hold Sage Integers (they have __index__); pass
elements of GF(p^k) as their integer encoding (see the README).
"""
import itertools
import time

import mathpool


def registers(degree):
    """Each register of this degree with c0 = 1, lazily (imap keeps memory bounded)."""
    for bits in itertools.product((0, 1), repeat=degree - 1):
        yield {"field": 2, "coefficients": [1, *bits]}


def main():
    started = time.perf_counter()
    with mathpool.Pool(workers="auto") as pool:
        counts = {}
        for degree in range(12, 17):
            results = pool.imap("lfsr.polynomial", registers(degree))
            counts[degree] = sum(r["is_primitive"] for r in results)
            print(f"{degree}: {counts[degree]} primitive of {2 ** (degree - 1)}", flush=True)
        stats = pool.stats()
    print(f"{sum(2 ** (d - 1) for d in counts)} registers in {time.perf_counter() - started:.2f} s "
          f"on {len(stats['workers'])} workers")
    assert counts == {12: 144, 13: 630, 14: 756, 15: 1800, 16: 2048}, counts


if __name__ == "__main__":
    main()

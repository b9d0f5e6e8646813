#!/usr/bin/env python3
"""Benchmarks of the Python module (issue 20), each pair measured in one run:

 1. The pool's own cost from Python: N example.echo tasks (default 200,000)
    through mathpool.Pool(workers=2).imap, against
    multiprocessing.Pool(2).imap(chunksize=1000) of an identity function over
    the same dicts. Target: mathpool >= 5x faster.
 2. Python access costs little: every degree-16 register's lfsr.polynomial
    (32,768 tasks) from Python via imap, against `mathpool run` of
    configs/primitive16.yaml (2 workers). Target: <= 1.2x the command's time.

    PYTHONPATH=build/python /usr/bin/python3 tests/bench/python/module_bench.py [--quick] [--build DIR]

Prints a Markdown table. Each figure is one run (wall time, including the
pool's start and shutdown on both sides); on a shared machine they vary from
run to run, so quote the machine and the load with them.
"""
import argparse
import itertools
import multiprocessing
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import mathpool

SOURCE = pathlib.Path(__file__).resolve().parents[3]


def identity(x):
    return x


def echo_params(n):
    return ({"x": i, "s": "abc"} for i in range(n))


def mathpool_echo(n):
    started = time.perf_counter()
    count = 0
    with mathpool.Pool(workers=2) as pool:
        for _ in pool.imap("example.echo", echo_params(n)):
            count += 1
    assert count == n
    return time.perf_counter() - started


def multiprocessing_echo(n):
    started = time.perf_counter()
    count = 0
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for _ in pool.imap(identity, echo_params(n), chunksize=1000):
            count += 1
    assert count == n
    return time.perf_counter() - started


def command_echo(build, n):
    """The same tasks through the command: the pool core's own cost, without Python."""
    with tempfile.TemporaryDirectory() as tmp:
        config = pathlib.Path(tmp) / "echo.yaml"
        config.write_text("pool: {workers: 2}\nanalyses:\n  - name: echo\n    analysis: example.echo\n"
                          f"    params: {{s: abc}}\n    sweep: {{x: {{range: [0, {n}]}}}}\n")
        out = pathlib.Path(tmp) / "echo.jsonl"
        started = time.perf_counter()
        subprocess.run([str(build / "bin" / "mathpool"), "run", str(config), "-o", str(out), "-q"], check=True)
        return time.perf_counter() - started


def registers(limit=None):
    regs = ({"field": 2, "coefficients": [1, *bits]} for bits in itertools.product((0, 1), repeat=15))
    return itertools.islice(regs, limit) if limit else regs


def mathpool_degree16():
    started = time.perf_counter()
    with mathpool.Pool(workers=2) as pool:
        primitive = sum(r["is_primitive"] for r in pool.imap("lfsr.polynomial", registers()))
    assert primitive == 2048, primitive
    return time.perf_counter() - started


def command_degree16(build):
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "p16.jsonl"
        started = time.perf_counter()
        subprocess.run([str(build / "bin" / "mathpool"), "run", str(SOURCE / "configs" / "primitive16.yaml"),
                        "--workers", "2", "-o", str(out), "-q"], check=True)
        seconds = time.perf_counter() - started
        assert out.read_text().count('"is_primitive":true') == 2048
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no verdicts (a smoke test)")
    parser.add_argument("--build", default=os.environ.get("MATHPOOL_BUILD_DIR", SOURCE / "build"))
    parser.add_argument("-n", type=int, default=200_000, help="echo tasks of pair 1")
    args = parser.parse_args()
    build = pathlib.Path(args.build)
    n = 20_000 if args.quick else args.n

    rows = []
    m = mathpool_echo(n)
    p = multiprocessing_echo(n)
    c = command_echo(build, n)
    rows.append((f"{n} example.echo, 2 workers: mathpool.Pool.imap", m,
                 "multiprocessing.Pool(2).imap(chunksize=1000)", p, p / m, ">= 5x faster", p / m >= 5))
    rows.append((f"{n} example.echo, 2 workers: mathpool.Pool.imap", m,
                 "`mathpool run` of the same tasks (the core, no Python)", c, m / c, "—", None))
    if not args.quick:
        m = mathpool_degree16()
        c = command_degree16(build)
        rows.append(("32768 lfsr.polynomial (degree 16), 2 workers: mathpool.Pool.imap", m,
                     "`mathpool run configs/primitive16.yaml`", c, m / c, "<= 1.2x the command", m / c <= 1.2))

    load = os.getloadavg()[0]
    print(f"Python module benchmarks, one run each pair; {os.cpu_count()} cores, load average {load:.1f} "
          f"at the end; Python {sys.version.split()[0]}.\n")
    print("| Scenario | Time | Reference | Time | Ratio | Target | Result |")
    print("|---|---:|---|---:|---:|---|---|")
    for name, t, ref, rt, ratio, target, met in rows:
        verdict = "—" if args.quick or met is None else ("**met**" if met else "**missed**")
        if "faster" in target:
            shown = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
        else:
            shown = f"{ratio:.2f}x the time"
        print(f"| {name} | {t:.3f} s | {ref} | {rt:.3f} s | {shown} | {target} | {verdict} |")


if __name__ == "__main__":
    main()

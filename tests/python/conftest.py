"""Shared fixtures of the Python module's tests (run by ctest: tests/python/CMakeLists.txt).

Run by hand from the source tree after a build:
    PYTHONPATH=build/python /usr/bin/python3 -m pytest tests/python
"""
import os
import pathlib
import subprocess

import pytest

SOURCE = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("MATHPOOL_BUILD_DIR", SOURCE / "build"))
MATHPOOL = BUILD / "bin" / "mathpool"
TESTKIT = BUILD / "tests" / "plugins" / "testkit"
CONFIGS = SOURCE / "configs"


@pytest.fixture(params=["zygote", "spawn"])
def start(request):
    """Both start modes."""
    return request.param


@pytest.fixture
def testkit():
    """plugin_path of the test plugin (testkit.echo misbehaves on demand)."""
    return [str(TESTKIT)]


def command(*args, check=True):
    """Runs the mathpool command; returns the CompletedProcess (text)."""
    r = subprocess.run([str(MATHPOOL), *map(str, args)], capture_output=True, text=True)
    if check and r.returncode not in (0, 1):
        raise AssertionError(f"mathpool {' '.join(map(str, args))}: exit {r.returncode}: {r.stderr}")
    return r


def record_form(value):
    """A Python result as a result record writes it: integers past signed 64 bits
    and NaN/infinities as strings (README, "Result records")."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return str(value) if not -2**63 <= value < 2**63 else value
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, list):
        return [record_form(v) for v in value]
    if isinstance(value, dict):
        return {k: record_form(v) for k, v in value.items()}
    return value

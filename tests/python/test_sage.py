"""The module inside SageMath (Debian's sage runs on the same /usr/bin/python3)."""
import os
import shutil
import subprocess
import textwrap

import pytest

import mathpool

SAGE = shutil.which("sage")

SCRIPT = textwrap.dedent("""
    import mathpool
    from sage.all import GF, Integer
    F = GF(4, 'z')
    z = F.gen()
    encode = lambda e: e.to_integer() if hasattr(e, "to_integer") else e.integer_representation()
    with mathpool.Pool(workers=1) as pool:
        # Sage's Integer converts (it has __index__); a GF(4) element is passed
        # as its integer encoding (README: base-p digits, lowest first).
        r = pool.submit("lfsr.polynomial", {"field": Integer(4),
                                            "coefficients": [encode(z + 1), Integer(1)]}).result()
        assert isinstance(r["order"], int), r
        try:
            pool.submit("lfsr.polynomial", {"field": 4, "coefficients": [z, 1]})
        except TypeError as e:
            assert "coefficients[0]" in str(e), e
        else:
            raise AssertionError("a GF(4) element was accepted")
        big = pool.submit("example.echo", {"n": Integer(2)**200}).result()["n"]
        assert big == 2**200
    print("sage ok")
""")


@pytest.mark.skipif(SAGE is None, reason="sage is not installed (Debian: apt-get install sagemath); "
                                         "the stand-in classes of test_values.py cover __index__")
def test_in_sage():
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(mathpool.__file__)))
    r = subprocess.run([SAGE, "-python", "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "sage ok" in r.stdout, r.stdout + r.stderr

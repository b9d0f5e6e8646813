"""Values cross exactly: Python -> parameters -> worker -> result -> Python."""
import math

import pytest

import mathpool


class SageLikeInteger:
    """A stand-in for Sage's Integer: not an int, but has __index__."""

    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


class GFElement:
    """A stand-in for a finite-field element: no __index__, so refused."""

    def __repr__(self):
        return "z4 + 1"


BIG = [0, 1, -1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -2**63, -2**63 - 1, 10**40, -10**40,
       2**20000 + 12345, -(3**9000)]  # the last two pass Python's int-to-str limit (4300 digits)


@pytest.fixture(scope="module")
def pool():
    with mathpool.Pool(workers=1) as p:
        yield p


def echo(pool, params):
    return pool.submit("example.echo", params).result(timeout=60)


def test_every_kind_round_trips(pool):
    params = {
        "ints": BIG,
        "floats": [0.0, -0.0, 1.5, 1e308, 5e-324, math.inf, -math.inf],
        "str": "h\u00e9llo \u2603 \U0001f600 \x00 end",
        "bytes": b"\x00\xff raw",
        "bool": [True, False],
        "none": None,
        "list": [1, [2, [3, []]], {}],
        "dict": {"a": {"b": {"c": "d"}}, "": 0},
    }
    r = echo(pool, params)
    assert r == params
    assert [type(v) for v in r["ints"]] == [int] * len(BIG)
    assert [type(v) for v in r["bool"]] == [bool, bool]  # not 1 and 0
    assert type(r["bytes"]) is bytes
    assert math.copysign(1, r["floats"][1]) == -1
    assert list(r) == list(params)  # key order kept


def test_nan_round_trips(pool):
    r = echo(pool, {"x": math.nan, "l": [math.nan]})
    assert math.isnan(r["x"]) and math.isnan(r["l"][0])


def test_tuples_and_bytearrays_arrive_as_lists_and_bytes(pool):
    assert echo(pool, {"t": (1, (2, 3)), "b": bytearray(b"ab")}) == {"t": [1, [2, 3]], "b": b"ab"}


def test_index_objects_are_integers(pool):
    r = echo(pool, {"q": SageLikeInteger(4), "big": SageLikeInteger(2**100), "l": [SageLikeInteger(-7)]})
    assert r == {"q": 4, "big": 2**100, "l": [-7]}
    assert type(r["q"]) is int


def test_other_objects_raise_type_error_naming_the_parameter(pool):
    with pytest.raises(TypeError, match=r"parameter 'coefficients\[2\]' is a GFElement"):
        pool.submit("example.echo", {"field": 4, "coefficients": [1, 0, GFElement()]})
    with pytest.raises(TypeError, match=r"parameter 'a\.b\[0\]\.c' is a complex"):
        pool.submit("example.echo", {"a": {"b": [{"c": 1j}]}})
    with pytest.raises(TypeError, match=r"parameter 's' is a set"):
        pool.submit("example.echo", {"s": {1, 2}})
    with pytest.raises(TypeError, match=r"key that is not a str \(3\)"):
        pool.submit("example.echo", {"m": {3: "x"}})
    with pytest.raises(TypeError, match="parameters must be a dict"):
        pool.submit("example.echo", [1, 2])
    assert echo(pool, None) == {}  # no parameters


def test_too_deep_values_are_refused(pool):
    v = []
    for _ in range(300):
        v = [v]
    with pytest.raises(ValueError, match="nested deeper than 200 levels"):
        pool.submit("example.echo", {"v": v})


def test_a_bad_parameter_in_imap_raises_in_place_and_the_rest_go_on(pool):
    params = [{"x": 0}, {"x": GFElement()}, {"x": 2}]
    it = pool.imap("example.echo", params)
    assert next(it) == {"x": 0}
    with pytest.raises(TypeError, match=r"parameter 'x' is a GFElement"):
        next(it)
    assert next(it) == {"x": 2}
    out = pool.map("example.echo", params, errors="return")
    assert out[0] == {"x": 0} and isinstance(out[1], TypeError) and out[2] == {"x": 2}


def test_big_integers_from_the_lfsr_plugin_are_ints(pool):
    # x^128 + x^7 + x^2 + x + 1 (primitive): order 2^128 - 1, 2^128 states.
    c = [0] * 128
    c[0] = c[1] = c[2] = c[7] = 1
    r = pool.submit("lfsr.cycles", {"field": 2, "coefficients": c}).result()
    assert r["order"] == 2**128 - 1 and type(r["order"]) is int
    assert r["states"] == 2**128
    p = pool.submit("lfsr.polynomial", {"field": 2, "coefficients": c}).result()
    assert p["order"] == 2**128 - 1 and p["is_primitive"] is True
    # Orders past 64 bits of a high-degree register over GF(3).
    c3 = [1] + [0] * 99 + [1]  # x^101 - x^100 - 1 over GF(3)
    r3 = pool.submit("lfsr.cycles", {"field": 3, "coefficients": c3}).result()
    assert r3["states"] == 3**101 and isinstance(r3["order"], int) and r3["order"] > 2**64


def test_integers_past_64_bits_still_reach_plugins_as_out_of_range(pool):
    with pytest.raises(mathpool.InvalidParams, match="parameter 'field' is out of range: 1267650600228229401496703205376"):
        pool.submit("lfsr.polynomial", {"field": 2**100, "coefficients": [1, 1]}).result()

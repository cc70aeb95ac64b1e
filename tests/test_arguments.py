"""``lowbit.arguments``: a builder's keyword arguments read from its signature (types, ranges, defaults)."""

from __future__ import annotations

from typing import Literal

from lowbit.arguments import Count, Fraction, Param, Problem, accepts, check_kwargs, describe, params


def test_arguments_read_from_signatures():
    def build(a: int, b: Count = 0, c: Fraction = 0.5, d=3, e: tuple[int, ...] = (1,), f: str | None = None, **kw):
        """Builder."""

    ps = {p.name: p for p in params(build)}
    assert list(ps) == ["a", "b", "c", "d", "e", "f"] and ps["a"].required and not ps["b"].required
    assert ps["d"].type_text() == "a whole number"  # no annotation: the default's type
    assert ps["e"].type_text() == "a list of whole numbers" and ps["f"].type_text() == "a string"
    assert accepts([1, 2], ps["e"].hint) and not accepts([1, 2.5], ps["e"].hint)
    assert accepts(0.25, ps["c"].hint) and not accepts(1.0, ps["c"].hint) and not accepts(float("nan"), float)
    assert not accepts(True, int) and not accepts(1, bool) and accepts(2, float) and not accepts(True, float)
    assert check_kwargs(build, {"zzz": 1}) is None  # **kw takes any name
    assert check_kwargs(build, {"b": -1}) == Problem("b", -1, "expected a whole number >= 0")
    assert describe(Count) == "a whole number >= 0" and Param("x", bool).check("yes") == "expected true or false"


class Net:
    def __init__(self, width: int = 4, mode: Literal["a", "b"] = "a"):
        pass


def build_net(depth: int = 2, **kwargs) -> Net:
    return Net(**kwargs)


def test_literals_unions_and_classes_followed_through_kwargs():
    build = build_net
    assert [p.name for p in params(build)] == ["depth", "width", "mode"]
    assert check_kwargs(build, {"mode": "c"}) == Problem("mode", "c", "expected one of 'a', 'b'")
    unknown = check_kwargs(build, {"colour": 1})
    assert unknown.unknown and unknown.what == "unknown argument; accepted: depth, width, mode"
    assert accepts(3, int | str) and accepts("x", int | str) and not accepts(2.5, int | str)
    assert Param("n", int).check("300") == "expected a whole number (write it without quotes)"
    assert Param("n", None).check(object()) is None  # nothing known: anything goes

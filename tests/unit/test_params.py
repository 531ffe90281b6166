import pytest

from labkit.core.errors import BadParameter, UnknownName
from labkit.core.params import Param, parse_assignments, resolve

SPEC = [
    Param("mode", "sequential", "how", choices=("sequential", "concurrent")),
    Param("items", 5, "count", minimum=1, maximum=12),
    Param("latency_ms", 50.0, "ms", minimum=0, unit="ms"),
    Param("error_rate", 0.0, "p", minimum=0, maximum=1),
    Param("down", False, "flag"),
]


def test_defaults_are_overlaid_and_strings_converted():
    got = resolve(SPEC, {"items": "7", "latency_ms": "12.5", "down": "yes"}, owner="x")
    assert got == {
        "mode": "sequential",
        "items": 7,
        "latency_ms": 12.5,
        "error_rate": 0.0,
        "down": True,
    }


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"latency_ms": "-5"}, "latency_ms='-5': must be at least 0 ms"),
        ({"error_rate": 1.5}, "error_rate=1.5: must lie between 0 and 1 (it is a probability)"),
        ({"items": "2.5"}, "items='2.5': must be a whole number"),
        ({"items": 0}, "items=0: must lie between 1 and 12"),
        ({"mode": "parallel"}, "mode='parallel': must be one of sequential, concurrent"),
        ({"down": "maybe"}, "down='maybe': must be true or false"),
        ({"latency_ms": "nan"}, "latency_ms='nan': must be a number"),
    ],
)
def test_bad_values_are_named_in_one_line(given, expected):
    with pytest.raises(BadParameter) as info:
        resolve(SPEC, given, owner="x")
    assert str(info.value) == expected
    assert "\n" not in str(info.value)


def test_unknown_parameter_lists_the_known_ones():
    with pytest.raises(UnknownName) as info:
        resolve(SPEC, {"latency": 5}, owner="gateway")
    assert "'latency'" in str(info.value) and "latency_ms" in str(info.value)


def test_assignments_split_on_the_first_equals_sign():
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(BadParameter, match="name=value"):
        parse_assignments(["novalue"])
    with pytest.raises(BadParameter):
        parse_assignments(["=3"])


def test_labels_drop_the_unit_suffix_once_and_spell_acronyms():
    assert Param("interval_s", 5.0, "x", unit="s").label == "Interval (s)"
    assert Param("product_latency_ms", 5.0, "x", unit="ms").label == "Product latency (ms)"
    assert Param("bff", "web", "x").label == "BFF"
    assert Param("requests", 5, "x").label == "Requests"

"""mlmon.durations.parse_duration: the one parser behind every config file, flag and API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlmon.durations import parse_duration
from mlmon.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("250ms", timedelta(milliseconds=250)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1.5h", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("0s", timedelta(0)),
        (" 5 m ", timedelta(minutes=5)),
        (30, timedelta(seconds=30)),
        (0.5, timedelta(milliseconds=500)),
        (0, timedelta(0)),
        (timedelta(hours=2), timedelta(hours=2)),
    ],
)
def test_valid_durations(value: object, expected: timedelta) -> None:
    assert parse_duration(value, "interval") == expected


@pytest.mark.parametrize(
    ("value", "positive", "says"),
    [
        ("5x", False, 'index.every "5x" is not a duration; use e.g. "30s"'),
        ("1 hour", False, "is not a duration"),
        ("", False, "is not a duration"),
        ("30", False, "is not a duration"),  # a string needs its unit
        ("5M", False, "is not a duration"),
        ("P1D", False, "is not a duration"),
        ("1e3s", False, "is not a duration"),
        (True, False, "is not a duration"),
        (None, False, "is not a duration"),
        (float("nan"), False, "is not a duration"),
        (float("inf"), False, "is not a duration"),
        ("-5m", False, "is not a duration"),
        (-1, False, "is negative"),
        (timedelta(seconds=-1), False, 'index.every "-1s" is negative'),
        ("99999999999d", False, "is too long a duration"),
        ("0h", True, 'index.every "0h" must be positive'),
        (0, True, "must be positive"),
        (timedelta(0), True, "must be positive"),
    ],
)
def test_invalid_durations_name_the_field(value: object, positive: bool, says: str) -> None:
    with pytest.raises(ConfigError, match=r"^index\.every ") as err:
        parse_duration(value, "index.every", positive=positive)
    assert says in str(err.value)
    assert isinstance(err.value, ValueError)  # pydantic validators report it under the field


def test_long_values_are_cut_in_the_message() -> None:
    with pytest.raises(ConfigError) as err:
        parse_duration("x" * 500, "window")
    assert len(str(err.value)) < 200


def test_without_where_the_message_starts_with_the_value() -> None:
    # inside a pydantic validator the field path is prefixed by pydantic itself
    with pytest.raises(ConfigError, match=r'^"soon" is not a duration'):
        parse_duration("soon")


@pytest.mark.parametrize(
    "parse",
    [
        "mlmon.edge.config:parse_duration",
        "mlmon.server.config:parse_duration",
        "mlmon.alerting.config:parse_duration",
        "mlmon.cli:_duration",
        "mlmon.edge.imaging.config:_duration",
        "mlmon.commands._watch_config:_duration",
        "mlmon.engines.common:parse_window",
    ],
)
def test_every_caller_uses_the_one_parser(parse: str) -> None:
    import importlib

    module, name = parse.split(":")
    fn = getattr(importlib.import_module(module), name)
    assert fn("90m") == timedelta(minutes=90)
    assert fn("250ms") == timedelta(milliseconds=250)
    with pytest.raises(ConfigError, match="is not a duration"):
        fn("5x")

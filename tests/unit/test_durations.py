import pytest

from scenarios.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("2d", 172800),
        ("250ms", 0.25),
        (5, 5),
        ("1.5s", 1.5),
        ("1h", 3600),
    ],
)
def test_parses(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["15 minutes", "", "m", "1x", "h1", True, -1])
def test_rejects_with_example(text: object) -> None:
    with pytest.raises(ValueError, match=r"duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(3600, "1h"), (90, "1m30s"), (1.5, "1.5s")])
def test_formats(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text

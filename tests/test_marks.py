"""The high-water marks' file (tbmon.marks), the one the bot side and the processors host keep."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tbmon.marks import Key, MarkFile, state_directory

FIELDS = ("strategy", "exchange")
SETTING = "TBMON_STATE_DIR"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "kept in memory only" in r.getMessage()]


def test_marks_round_trip_in_their_order_finite_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "bot.high-water-marks.json"
    marks: dict[Key, float] = {("b", None): 120.0, ("a", "binance"): 3.5, ("c", None): math.inf}
    MarkFile(path, FIELDS, SETTING).save(marks)
    assert json.loads(path.read_text()) == {
        "marks": [
            {"strategy": "b", "exchange": None, "peak": 120.0},
            {"strategy": "a", "exchange": "binance", "peak": 3.5},
        ]
    }
    again = MarkFile(path, FIELDS, SETTING)
    assert list(again.marks.items()) == [(("b", None), 120.0), (("a", "binance"), 3.5)]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_unchanged_marks_are_not_written_again(tmp_path: Path) -> None:
    path = tmp_path / "marks.json"
    marks = MarkFile(path, FIELDS, SETTING)
    marks.save({("a", None): 1.0})
    path.write_text('{"marks": []}')  # so a second write would show
    marks.save({("a", None): 1.0})
    assert path.read_text() == '{"marks": []}'
    marks.save({("a", None): 2.0})
    assert MarkFile(path, FIELDS, SETTING).marks == {("a", None): 2.0}


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"marks": [{"strategy": "a", "peak": "high"}]}',
        '{"marks": [{"strategy": 7, "peak": 1.0}]}',
        '{"peaks": []}',
    ],
)
def test_a_corrupt_file_costs_one_warning_and_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    path = tmp_path / "marks.json"
    path.write_text(text)
    marks = MarkFile(path, FIELDS, SETTING)
    assert marks.marks == {}
    marks.warn("a second problem")
    (warning,) = _warnings(caplog)
    assert f"cannot read {path}" in warning
    assert SETTING in warning


def test_an_unwritable_directory_costs_one_warning_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a directory under a file cannot be made, even by root
    marks = MarkFile(blocker / "state" / "marks.json", FIELDS, SETTING)
    marks.save({("a", None): 1.0})
    marks.save({("a", None): 2.0})
    (warning,) = _warnings(caplog)
    assert "cannot write" in warning
    assert "set TBMON_STATE_DIR to a writable directory" in warning
    assert marks.marks == {}  # the file holds nothing: the caller keeps its marks in memory


def test_no_path_is_memory_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    marks = MarkFile(None, FIELDS, SETTING)
    marks.save({("a", None): 1.0})
    assert marks.marks == {}
    assert not _warnings(caplog)


def test_the_state_directory_setting() -> None:
    assert state_directory(None) is None
    assert state_directory("off") is None
    assert state_directory(" OFF ") is None
    assert state_directory("~/state") == Path.home() / "state"

"""The one safe JSON reader (lesionpaste/jsonfiles.py) on its own: every damage is one
LesionPasteError naming the file, never a RecursionError or a UnicodeDecodeError; JSON lines
keep their numbers; what a tool saved for itself reads as None when damaged; NaN and the
infinities are written as null. Each reader's use on received files is in
test_received_files.py."""

from __future__ import annotations

import math

import pytest

from lesionpaste.jsonfiles import (
    MAX_JSON_BYTES,
    MAX_JSON_LINE_BYTES,
    finite_json,
    json_lines,
    parse_json,
    read_json_file,
    saved_json,
)
from tests.conftest import refusal

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate

DEEP = "[" * 200_000 + "]" * 200_000


def test_parse_json_turns_every_damage_into_one_line_naming_the_file():
    assert parse_json('{"a": [1, 2.5, null]}', "f.json") == {"a": [1, 2.5, None]}
    assert parse_json(b'{"a": "\xc3\xa9"}', "f.json") == {"a": "é"}
    assert refusal(lambda: parse_json(DEEP, "f.json")) == (
        "f.json: JSON nested too deeply to be a LesionPaste file"
    )
    message = refusal(lambda: parse_json("{not json", "f.json"))
    assert message.startswith("f.json: not valid JSON (Expecting property name"), message
    message = refusal(lambda: parse_json(b'"\xff"', "f.json"))
    assert message.startswith("f.json: not valid JSON ("), message


def test_read_json_file_bounds_the_size_and_names_the_file(tmp_path):
    assert MAX_JSON_BYTES == 64 << 20 and MAX_JSON_LINE_BYTES == 16 << 20
    path = tmp_path / "d.json"
    path.write_text('{"k": 1}  ')
    assert read_json_file(path) == {"k": 1}
    assert read_json_file(path, max_bytes=10) == {"k": 1}  # exactly at the limit
    assert refusal(lambda: read_json_file(path, max_bytes=9)) == (
        f"{path}: longer than a JSON file may be (9 bytes); refused unread"
    )
    path.write_text(DEEP)
    assert refusal(lambda: read_json_file(path)) == (
        f"{path}: JSON nested too deeply to be a LesionPaste file"
    )
    assert refusal(lambda: read_json_file(tmp_path / "missing.json")).startswith(
        f"{tmp_path / 'missing.json'}: "
    )
    assert refusal(lambda: read_json_file(tmp_path)) == (
        f"{tmp_path}: a directory, where a JSON file was expected"
    )


def test_json_lines_numbers_each_line_and_marks_damaged_ones(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"epoch": 1}\n{broken\n' + DEEP + '\n[1, 2]\n"\\ud800"\n')
    assert list(json_lines(path)) == [(1, {"epoch": 1}), (2, None), (3, None), (4, [1, 2]),
                                      (5, "\ud800")]  # fmt: skip
    path.write_bytes(b'{"a": 1}\n"\xff"\n')
    assert list(json_lines(path)) == [(1, {"a": 1}), (2, None)]
    path.write_text('{"a": 1}\n' + '"' + "x" * 20 + '"\n')
    assert list(json_lines(path, max_line_bytes=23)) == [(1, {"a": 1}), (2, "x" * 20)]
    lines = json_lines(path, max_line_bytes=22)
    assert next(lines) == (1, {"a": 1})
    assert refusal(lambda: next(lines)) == f"{path}, line 2: longer than 22 bytes; refused"
    missing = tmp_path / "missing.jsonl"
    assert refusal(lambda: list(json_lines(missing))).startswith(f"{missing}: ")
    assert refusal(lambda: list(json_lines(tmp_path))) == (
        f"{tmp_path}: a directory, where a JSON-lines file was expected"
    )


def test_saved_json_is_none_when_missing_or_damaged(tmp_path):
    path = tmp_path / "config.json"
    assert saved_json(path) is None
    path.write_text('{"epochs": 3}')
    assert saved_json(path) == {"epochs": 3}
    for damaged in ("{", DEEP):
        path.write_text(damaged)
        assert saved_json(path) is None
    path.write_bytes(b'"\xff"')
    assert saved_json(path) is None
    assert saved_json(tmp_path) is None  # a folder: unreadable as a file


def test_finite_json_writes_nan_and_the_infinities_as_null():
    value = {"a": [1.0, math.nan, math.inf], "b": (2, -math.inf), "c": "x", "d": 3, "e": None}
    assert finite_json(value) == {
        "a": [1.0, None, None],
        "b": [2, None],
        "c": "x",
        "d": 3,
        "e": None,
    }
    assert finite_json(0.5) == 0.5 and finite_json(math.nan) is None
    assert math.isnan(value["a"][1])  # a copy: the input is left as it was

"""JSON from files that may come from someone else: bounded in size, depth refused cleanly."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

from lesionpaste.errors import LesionPasteError
from lesionpaste.files import open_regular, read_regular_file

#: The longest ``dataset.json`` (or other JSON document) read; a real one is kilobytes.
MAX_JSON_BYTES = 64 << 20
#: The longest line of a JSON-lines file (``pastes.jsonl``: one twin's pastes per line).
MAX_JSON_LINE_BYTES = 16 << 20


def parse_json(text: str | bytes, where: object) -> object:
    """``json.loads`` that turns malformed, non-UTF-8 or absurdly nested JSON into one error.

    Args:
        text: the JSON document.
        where: the file it came from, named in the message.

    Returns:
        The parsed value.

    Raises:
        LesionPasteError: naming ``where``.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise LesionPasteError(
            f"{where}: JSON nested too deeply to be a LesionPaste file"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise LesionPasteError(f"{where}: not valid JSON ({exc})") from None


def read_json_file(path: Path, max_bytes: int = MAX_JSON_BYTES) -> object:
    """The JSON document in ``path`` (a regular file of at most ``max_bytes``).

    Args:
        path: the JSON file.
        max_bytes: the longest file accepted.

    Returns:
        The parsed value.

    Raises:
        LesionPasteError: missing, unreadable, not a regular file, over ``max_bytes``, or not
            valid JSON.
    """
    return parse_json(read_regular_file(path, max_bytes, "JSON file"), path)


def json_lines(
    path: Path, max_line_bytes: int = MAX_JSON_LINE_BYTES
) -> Iterator[tuple[int, object | None]]:
    """``(line number, value)`` for each line of a JSON-lines file, read one line at a time;
    the value is None for a line that is not valid JSON (malformed, or nested absurdly deep).

    Args:
        path: the JSON-lines file.
        max_line_bytes: the longest line accepted.

    Yields:
        ``(number, value)``: the 1-based line number and the parsed value (None when
        invalid).

    Raises:
        LesionPasteError: not a regular file, or a line longer than ``max_line_bytes``.
    """
    with open_regular(path, "JSON-lines file") as fh:
        number = 0
        while line := fh.readline(max_line_bytes + 1):
            number += 1
            if len(line) > max_line_bytes:
                raise LesionPasteError(
                    f"{path}, line {number}: longer than {max_line_bytes:,} bytes; refused"
                )
            try:
                yield number, json.loads(line)
            except (RecursionError, UnicodeDecodeError, ValueError):
                yield number, None


def saved_json(path: Path) -> object | None:
    """JSON that a tool saved for itself (a run's configuration, a resumable record), or None
    when it is missing, unreadable or damaged: the caller then starts that part afresh.

    Args:
        path: the JSON file.

    Returns:
        The parsed value, or None.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # damaged, or nested absurdly deep
        return None


def finite_json(value: object) -> object:
    """A JSON-ready value with every non-finite number (NaN, infinities) as ``null``, for files
    other tools read (strict JSON has no NaN).

    Args:
        value: dicts, lists and scalars.

    Returns:
        A copy with each non-finite float replaced by None.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value

"""What an interrupted lp-synth run keeps: an image's record counts as finished only while every
file it names is there with its digest; otherwise the image is made again."""

from __future__ import annotations

import json

from lesionpaste.digests import sha256_bytes
from lesionpaste.synth.run.runner import finished_record


def _work(tmp_path):
    work = tmp_path / ".ds.partial"
    (work / "records").mkdir(parents=True)
    (work / "images").mkdir()
    (work / "images" / "a.png").write_bytes(b"pixels")
    record = {
        "id": "a",
        "files": {"image": {"path": "images/a.png", "sha256": sha256_bytes(b"pixels")}},
    }
    (work / "records" / "a.json").write_text(json.dumps(record), encoding="utf-8")
    return work, record


def test_a_record_whose_files_are_intact_is_finished(tmp_path):
    work, record = _work(tmp_path)
    assert finished_record(work, "a") == record
    assert finished_record(work, "b") is None  # no record at all


def test_a_record_whose_file_is_gone_altered_or_not_a_file_is_made_again(tmp_path):
    work, _ = _work(tmp_path)
    (work / "images" / "a.png").write_bytes(b"other pixels")
    assert finished_record(work, "a") is None
    (work / "images" / "a.png").unlink()
    assert finished_record(work, "a") is None  # refused by the reader, not a crash
    (work / "images" / "a.png").mkdir()
    assert finished_record(work, "a") is None


def test_a_damaged_record_is_made_again(tmp_path):
    work, _ = _work(tmp_path)
    (work / "records" / "a.json").write_text('{"id": "a", "files": ', encoding="utf-8")
    assert finished_record(work, "a") is None
    (work / "records" / "a.json").write_text('{"id": "a"}', encoding="utf-8")
    assert finished_record(work, "a") is None

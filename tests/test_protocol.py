"""The EyePACS protocol's published split (bench/eyepacs_protocol.py, docs/protocol/): the lists
are what the script makes from the shared labels, and no patient is on two sides."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from lesionpaste.synth.inputs.normals import patient_of
from tests.conftest import shared

ROOT = Path(__file__).resolve().parents[1]


def _protocol():
    spec = importlib.util.spec_from_file_location(
        "eyepacs_protocol", ROOT / "bench" / "eyepacs_protocol.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "image,level"
    return [tuple(line.split(",")) for line in lines[1:]]


def test_the_published_lists_are_the_scripts_split_of_the_shared_labels(tmp_path):
    protocol = _protocol()
    labels = shared("eyepacs256", "labels.csv")
    counts = protocol.write_lists(labels, tmp_path)
    for part in protocol.PARTS:
        name = f"eyepacs256-{part}.csv"
        assert (tmp_path / name).read_bytes() == (ROOT / "docs" / "protocol" / name).read_bytes()
    assert counts == {"tuning": 1441, "tuning-train": 1000, "tuning-val": 441, "test": 944}


def test_no_patient_is_on_two_sides_and_every_image_is_on_one():
    protocol = _protocol()
    parts = {p: _rows(ROOT / "docs" / "protocol" / f"eyepacs256-{p}.csv") for p in protocol.PARTS}
    labels = _rows(shared("eyepacs256", "labels.csv"))

    def patients(part: str) -> set[str]:
        return {patient_of(image) for image, _ in parts[part]}

    assert not patients("tuning") & patients("test")
    assert not patients("tuning-train") & patients("tuning-val")
    assert sorted(parts["tuning"] + parts["test"]) == sorted(labels)
    assert sorted(parts["tuning-train"] + parts["tuning-val"]) == sorted(parts["tuning"])
    for part in ("tuning-val", "test"):  # every grade is present where a setting is judged
        assert {level for _, level in parts[part]} == {"0", "1", "2", "3", "4"}


def _in_process(name: str, command: list[str], results: dict, timeout: float) -> str:
    """gpu_check's step runner, running the tool named by ``command[0]`` in this process."""
    from tests.test_output_safety import invoke

    code, err = invoke(Path(command[0]).name, *command[1:])
    results[name] = {"seconds": 0.0, "exit": code, "tail": err.strip().splitlines()[-6:]}
    return err


def test_a_step_records_its_exit_its_last_lines_and_a_timeout():
    check = _gpu_check()
    results: dict = {}
    output = check._run("fails", [sys.executable, "-c", "print('one'); print('two'); exit(3)"],
                        results, timeout=60)  # fmt: skip
    assert results["fails"]["exit"] == 3 and results["fails"]["tail"] == ["one", "two"]
    assert "two" in output and results["fails"]["seconds"] >= 0
    check._run("hangs", [sys.executable, "-c", "import time; time.sleep(30)"], results, 0.5)
    assert results["hangs"]["exit"] == 124 and results["hangs"]["tail"][-1] == "timed out"


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_papers_protocol_runs_on_a_cpu_with_tiny_settings(tmp_path, monkeypatch):
    """make paper-eyepacs's CPU path: a few images per grade of the published lists, a small
    CNN for one epoch; both rows evaluated per grade on the same test images, with paired
    DeLong, and the time estimate recorded (or the step skipped when over its budget)."""
    shared("eyepacs256", "images")
    from tests.synth_fixtures import make_fundus_bank

    check = _gpu_check()
    monkeypatch.setattr(check, "_run", _in_process)  # the same command lines, without 6 imports
    bank = make_fundus_bank(tmp_path / "bank.h5")
    results: dict = {}
    check.paper_protocol(tmp_path, bank, "cpu", True, results, images_per_s=1e9)
    failed = {k: v for k, v in results.items() if isinstance(v, dict) and v.get("exit")}
    assert not failed, failed
    evaluation = results["paper_eval"]
    grades = {"0v1", "0v2", "0v3", "0v4", "0vall"}
    assert set(evaluation["lesionpaste_auc"]) == set(evaluation["supervised_auc"]) == grades
    assert set(evaluation["delong_lesionpaste_minus_supervised"]) == grades
    assert evaluation["settings"]["freeze"] == 0  # fully fine-tuned, as the paper
    assert results["paper_estimate"]["images_seen"] == (2 * 8 + 40) * 1
    skipped: dict = {}
    (tmp_path / "x").mkdir()
    check.paper_protocol(tmp_path / "x", bank, "cpu", True, skipped, budget_s=1.0,
                         images_per_s=1.0)  # fmt: skip
    assert skipped["paper_estimate"]["skipped"] and "paper_synth" not in skipped

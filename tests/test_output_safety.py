"""No tool ever writes over, into or around its inputs, through a link, or over a user's files.

One workspace holds every kind of input (an IDRiD tree, normals, a label file, a bank, a
dataset, an evaluation set, a run) and a folder of the user's own files with a link to it.
Every tool is pointed at each of its inputs, at a parent of one, at the link and at the user's
folder, with and without --overwrite: each must refuse with one line, and afterwards every
file of the workspace must be byte-identical and nothing added.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import make_tiny_idrid, synthetic_fundus, write_rgb
from tests.synth_fixtures import make_normals

pytestmark = pytest.mark.mutation  # run against each mutant by make mutate


def invoke(tool: str, *args) -> tuple[int, str]:
    """Run one of the five console tools in-process; returns (exit code, stderr)."""
    from lesionpaste.bank_builder.cli import cli as bank_cli
    from lesionpaste.synth.cli import cli as synth_cli
    from lesionpaste.train.cli import eval_command, knn_command, train_command

    command = {
        "lp-bank": bank_cli,
        "lp-synth": synth_cli,
        "lp-train": train_command,
        "lp-eval": eval_command,
        "lp-knn": knn_command,
    }[tool]
    result = CliRunner().invoke(command, [str(a) for a in args], prog_name=tool)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: files by sha256, links by target, folders by name."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                state[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                state[rel] = "dir"
            else:
                state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """The workspace, made once with the real tools."""
    root = tmp_path_factory.mktemp("ws")
    make_tiny_idrid(root / "idrid")
    make_normals(root / "normals", 6)
    images = root / "graded" / "images"
    rows = [("image", "level")]
    for i in range(6):
        write_rgb(images / f"g{i}.png", synthetic_fundus(200, 260, 95, seed=300 + i))
        rows.append((f"g{i}", str(i % 2)))
    with open(root / "graded" / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code, err = invoke("lp-bank", "build", "idrid_07", "--root", "idrid", "--out", "bank.h5")
        assert code == 0, err
        code, err = invoke(*("lp-synth", "--bank", "bank.h5", "--normals", "normals", "--size"),
                           *("64", "--ratios", "0.8,0.2,0,0", "--out", "twins", "-q"))  # fmt: skip
        assert code == 0, err
        code, err = invoke(
            "lp-synth", "prep", "--images", "graded/images", "--labels", "graded/labels.csv",
            "--bank", "bank.h5", "--like", "twins", "--out", "eval", "-q",
        )  # fmt: skip
        assert code == 0, err
        code, err = invoke(
            "lp-train", "twins", "--out", "run", "--arch", "smallcnn", "--weights", "none",
            "--epochs", "1", "--batch-size", "4", "--size", "32", "--device", "cpu", "-q",
        )  # fmt: skip
        assert code == 0, err
        code, err = invoke("lp-eval", "run", "eval", "--out", "evaluation", "--device", "cpu", "-q")
        assert code == 0, err
        code, err = invoke("lp-synth", "preview", "twins", "-o", "preview.png")
        assert code == 0, err
    finally:
        os.chdir(cwd)
    user = root / "user"
    (user / "sub").mkdir(parents=True)
    (user / "notes.txt").write_text("the user's own notes\n")
    write_rgb(user / "photo.png", synthetic_fundus(40, 40, 15, seed=9))
    (user / "sub" / "keep.csv").write_text("a,b\n1,2\n")
    (root / "link").symlink_to(user, target_is_directory=True)
    (root / "photo_link.png").symlink_to(user / "photo.png")
    return root


BANK = ["--root", "{ws}/idrid"]
SYNTH = ["--bank", "{ws}/bank.h5", "--normals", "{ws}/normals", "--size", "64", "-q"]
SYNTH += ["--ratios", "0.8,0.2,0,0"]
PREP = ["prep", "--images", "{ws}/graded/images", "--labels", "{ws}/graded/labels.csv"]
PREP += ["--bank", "{ws}/bank.h5", "--like", "{ws}/twins", "-q"]
TRAIN = ["{ws}/twins", "--arch", "smallcnn", "--weights", "none", "--epochs", "1"]
TRAIN += ["--device", "cpu", "--eval", "{ws}/eval", "-q"]

#: (tool, arguments before the output, the output option, the outputs to try)
CASES = [
    ("lp-bank", ["build", "idrid_07", *BANK], "--out",
     ["idrid", "idrid/x.h5", ".", "link", "user/notes.txt", "photo_link.png", "twins"]),
    ("lp-bank", ["preview", "{ws}/bank.h5"], "-o", ["user/photo.png", "photo_link.png"]),
    ("lp-synth", SYNTH, "--out",
     ["normals", "normals/sub", ".", "link", "user", "bank.h5", "run"]),
    ("lp-synth", PREP, "--out",
     ["graded/images", "graded", "graded/labels.csv", "twins", "twins/images", ".", "link",
      "user", "bank.h5", "run"]),
    ("lp-synth", ["preview", "{ws}/twins"], "-o",
     ["user/photo.png", "photo_link.png", "twins/images/x.png"]),
    ("lp-train", TRAIN, "--out",
     ["twins", "twins/images", ".", "eval", "link", "user", "evaluation"]),
    ("lp-eval", ["{ws}/run", "{ws}/eval", "--device", "cpu", "-q"], "--out",
     ["run", ".", "eval", "eval/images", "twins", "link", "user", "run/checkpoint.pt"]),
    ("lp-knn", ["{ws}/twins", "{ws}/eval", "--arch", "resnet18", "--device", "cpu"], "--out",
     ["twins", "eval", ".", "link", "user", "run"]),
]  # fmt: skip


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize(
    "tool,args,option,outputs", CASES, ids=[f"{c[0]} {c[1][0]}".split("{")[0] for c in CASES]
)
def test_an_output_over_an_input_a_link_or_user_files_is_refused(
    ws, tool, args, option, outputs, overwrite
):
    before = snapshot(ws)
    for target in outputs:
        argv = [a.format(ws=ws) for a in args] + [option, ws / target]
        code, err = invoke(tool, *argv, *(["--overwrite"] if overwrite else []))
        lines = [line for line in err.strip().splitlines() if ": warning: " not in line]
        assert code != 0, f"{tool} accepted --out {target}"
        assert len(lines) == 1 and lines[0].startswith(f"{tool}: error: "), (target, err)
        assert "Traceback" not in err
        said = ("nothing was touched", "already exists", "is a directory", "not a run directory")
        assert any(words in lines[0] for words in said), (target, err)
        assert snapshot(ws) == before, f"{tool} --out {target} changed the workspace"


def test_the_messages_say_what_the_output_would_hit(ws):
    code, err = invoke("lp-synth", *[a.format(ws=ws) for a in SYNTH], "--out", ws / "normals")
    assert code == 1 and "is the folder of normal images" in err
    code, err = invoke("lp-synth", *[a.format(ws=ws) for a in SYNTH], "--out", ws, "--overwrite")
    assert "contains the bank" in err
    code, err = invoke("lp-train", *[a.format(ws=ws) for a in TRAIN], "--out", ws / "twins")
    assert "is the dataset" in err
    code, err = invoke("lp-synth", *[a.format(ws=ws) for a in SYNTH], "--out", ws / "link")
    assert "is a symbolic link" in err
    code, err = invoke(
        "lp-synth", *[a.format(ws=ws) for a in SYNTH], "--out", ws / "user", "--overwrite"
    )
    assert "it has no readable dataset.json; --overwrite replaces only an earlier output" in err


def test_overwrite_replaces_an_earlier_output_of_each_kind(ws, tmp_path):
    """The recognised outputs are replaced (copies, so the shared workspace stays as it is)."""
    import shutil

    for name in ("twins", "run", "evaluation"):
        shutil.copytree(ws / name, tmp_path / name, symlinks=True)
    shutil.copy(ws / "preview.png", tmp_path / "preview.png")
    synth = [a.format(ws=ws) for a in SYNTH]
    assert (
        invoke("lp-synth", *synth, "--seed", "1", "--out", tmp_path / "twins", "--overwrite")[0]
        == 0
    )
    assert (tmp_path / "twins" / "dataset.json").read_bytes() != (
        ws / "twins" / "dataset.json"
    ).read_bytes()
    train = [a.format(ws=ws) for a in TRAIN if a != "--eval" and "eval" not in a]
    code, err = invoke("lp-train", *train, "--seed", "3", "--out", tmp_path / "run", "--overwrite")
    assert code == 0, err
    assert '"seed": 3' in (tmp_path / "run" / "config.json").read_text()
    code, err = invoke(
        "lp-eval", tmp_path / "run", ws / "eval", "--out", tmp_path / "evaluation",
        "--device", "cpu", "--overwrite", "-q",
    )  # fmt: skip
    assert code == 0, err
    import json

    replaced = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert replaced["run"] == str(tmp_path / "run")  # the new evaluation, of the new run
    earlier = os.stat(tmp_path / "preview.png").st_ino
    code, err = invoke("lp-synth", "preview", ws / "twins", "-o", tmp_path / "preview.png",
                       "--overwrite")  # fmt: skip
    assert code == 0, err
    assert os.stat(tmp_path / "preview.png").st_ino != earlier  # written anew
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("kind", ["twins", "run", "evaluation"])
def test_overwrite_refuses_an_earlier_output_holding_a_users_file(ws, tmp_path, kind):
    import shutil

    out = tmp_path / kind
    shutil.copytree(ws / kind, out, symlinks=True)
    (out / "my notes.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    argv = {
        "twins": ("lp-synth", *[a.format(ws=ws) for a in SYNTH]),
        "run": ("lp-train", *[a.format(ws=ws) for a in TRAIN]),
        "evaluation": ("lp-eval", ws / "run", ws / "eval", "--device", "cpu"),
    }[kind]
    code, err = invoke(*argv, "--out", out, "--overwrite")
    assert code == 1 and "it holds 'my notes.txt', which lp-" in err, err
    assert snapshot(tmp_path) == before


def test_a_failed_replacement_of_a_run_keeps_the_earlier_run(ws, tmp_path, monkeypatch):
    import shutil

    from lesionpaste.train.runs import train_run

    shutil.copytree(ws / "run", tmp_path / "run")
    before = snapshot(tmp_path)

    def fails(data, run, config, quiet=False, heldout=None):
        (run / "checkpoint.pt").write_bytes(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(train_run, "train", fails)  # the training loop, as train_run calls it
    train_args = [a.format(ws=ws) for a in TRAIN if "eval" not in a]
    code, err = invoke("lp-train", *train_args, "--seed", "5", "--out", tmp_path / "run",
                       "--overwrite")  # fmt: skip
    assert code == 1 and "No space left on device" in err
    assert snapshot(tmp_path) == before  # the earlier run whole, and no partial run left


def test_a_failed_replacement_of_a_dataset_keeps_the_earlier_dataset(ws, tmp_path):
    import shutil

    shutil.copytree(ws / "twins", tmp_path / "twins")
    empty = tmp_path / "no normals"
    empty.mkdir()
    (empty / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    code, err = invoke(
        "lp-synth", "--bank", ws / "bank.h5", "--normals", empty, "--out", tmp_path / "twins",
        "--ratios", "0.8,0.2,0,0", "--overwrite", "-q",
    )  # fmt: skip
    assert code == 1 and "nothing was written" in err
    assert snapshot(tmp_path / "twins") == snapshot(ws / "twins")  # the earlier one, whole


def test_cross_validation_and_the_evaluation_after_training_never_land_in_a_users_folder(
    ws, tmp_path
):
    import shutil

    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "scores.csv").write_text("my own scores\n")
    before = snapshot(tmp_path)
    train = [a.format(ws=ws) for a in TRAIN if "eval" not in a]
    code, err = invoke("lp-train", *train, "--eval", ws / "eval", "--folds", "2", "--out", mine)
    assert code == 1 and "is not a run directory" in err
    assert snapshot(tmp_path) == before
    shutil.copytree(ws / "run", tmp_path / "run")
    (tmp_path / "run" / "eval").mkdir()
    (tmp_path / "run" / "eval" / "thesis.tex").write_text("mine\n")
    before = snapshot(tmp_path)
    code, err = invoke("lp-train", *train, "--eval", ws / "eval", "--out", tmp_path / "run")
    assert code == 1 and "run/eval: it has no metrics.json" in err, err
    assert snapshot(tmp_path) == before


def _library_calls(ws: Path) -> dict:
    """Each tool's library function, called from Python with an output that is, lies inside or
    holds one of its inputs (the command lines only parse and call these)."""
    from lesionpaste.bank_builder.build import build_bank
    from lesionpaste.dataset_archive import pack
    from lesionpaste.recipes import GrahamRecipe
    from lesionpaste.synth.run.runner import run_synthesis
    from lesionpaste.synth.sharing.export import export_dataset
    from lesionpaste.train.deploy.export_run import export_run
    from lesionpaste.train.deploy.predict import predict
    from lesionpaste.train.evaluation.evaluate_run import evaluate_run
    from lesionpaste.train.evaluation.knn_baseline import evaluate_knn
    from lesionpaste.train.runs.train_run import TrainRequest, train_run
    from lesionpaste.train.training.config import TrainConfig

    config = TrainConfig(str(ws / "twins"), arch="smallcnn", weights="none", epochs=1, size=32)
    return {
        "build_bank": lambda: build_bank(
            [],
            ws / "idrid" / "x.h5",
            modality="fundus",
            lesion_types=["MA"],
            recipe=GrahamRecipe(),
            command="x",
            inputs=[("IDRiD tree", ws / "idrid")],
        ),
        # the guard comes first: neither the (empty) normals nor the job are looked at
        "run_synthesis": lambda: run_synthesis(
            [], None, ws / "normals", command="x", inputs=[("normals", ws / "normals")]
        ),
        "train_run": lambda: train_run(TrainRequest(ws / "twins", ws / "twins" / "x", config)),
        "evaluate_run": lambda: evaluate_run(ws / "run", ws / "eval", ws / "eval", None, "cpu"),
        "evaluate_knn": lambda: evaluate_knn(ws / "twins", ws / "eval", ws, arch="resnet18"),
        "predict": lambda: predict(ws / "run", [ws / "graded"], ws / "graded" / "p", device="cpu"),
        "export_run": lambda: export_run(ws / "run", "onnx", ws / "run" / "exported"),
        "export_dataset": lambda: export_dataset(ws / "twins", ws / "twins", "mvtec", command="x"),
        "pack": lambda: pack(ws / "twins", ws / "twins" / "twins.tar"),
    }


@pytest.mark.parametrize(
    "name",
    ["build_bank", "run_synthesis", "train_run", "evaluate_run", "evaluate_knn", "predict",
     "export_run", "export_dataset", "pack"],
)  # fmt: skip
def test_each_tool_called_from_python_is_guarded_as_its_command_line_is(ws, name):
    from lesionpaste.errors import LesionPasteError

    before = snapshot(ws)
    with pytest.raises(LesionPasteError, match="nothing was touched"):
        _library_calls(ws)[name]()
    assert snapshot(ws) == before

"""``python -m pytest_mlsupply data add`` and ``hash``: in-process, plus one real subprocess."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_mlsupply.cli import EXIT_OK, EXIT_UNUSABLE, main
from pytest_mlsupply.datasets import MSG_ESCAPES, MSG_NOT_UTF8, load_manifest, tree_digest
from pytest_mlsupply.hashing import hash_file


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "data" / "images" / "train").mkdir(parents=True)
    (tmp_path / "data" / "images" / "train" / "0.png").write_bytes(b"\x89PNG0")
    (tmp_path / "data" / "images" / "1.png").write_bytes(b"\x89PNG1")
    (tmp_path / "data" / "model.safetensors").write_bytes(b"tensors" * 100)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_data_add_records_a_directory_and_a_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "data", "add", "images", "data/images")
    assert code == EXIT_OK
    assert "recorded dataset 'images' (directory, 2 files)" in out
    code, out, _ = run(
        capsys, "data", "add", "model", "data/model.safetensors", "--algorithm", "blake2b"
    )
    assert code == EXIT_OK
    manifest = load_manifest(project / "mlsupply-data.toml")
    images = manifest.datasets["images"]
    assert images.path == "data/images"
    assert images.files == {
        "1.png": hash_file(project / "data/images/1.png"),
        "train/0.png": hash_file(project / "data/images/train/0.png"),
    }
    assert images.tree == tree_digest(images.files)
    model = manifest.datasets["model"]
    assert model.digest == hash_file(project / "data/model.safetensors", "blake2b")
    text = (project / "mlsupply-data.toml").read_text(encoding="utf-8")
    assert text.index("[datasets.images]") < text.index("[datasets.model]")
    assert '"train/0.png" = "sha256:' in text  # one file a line, diffable


def test_data_add_refuses_data_outside_the_manifest_folder(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = project / "conf"
    sub.mkdir()
    code, _, err = run(
        capsys, "data", "add", "m", "data/model.safetensors", "--manifest", "conf/d.toml"
    )
    assert code == EXIT_UNUSABLE
    expected = MSG_ESCAPES.format(
        key="datasets.m.path", value="../data/model.safetensors", base=sub
    )
    assert expected in err
    assert not (sub / "d.toml").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "add", "x", "data/absent"], "data/absent: no such file or directory"),
        (["data", "add", "x", "data/images", "--algorithm", "sha999"], "unknown or unusable"),
        (["hash", "data", "--algorithm", "shake_128"], "unknown or unusable"),
        (["hash", "nothing-here"], "nothing-here: no such file or directory"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run(capsys, *args)
    assert code == EXIT_UNUSABLE
    assert message in err
    assert "Traceback" not in err


def test_hash_prints_every_file_like_sha256sum(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "hash", "data/images", "data/model.safetensors")
    assert code == EXIT_OK
    lines = out.splitlines()
    paths = ["data/images/1.png", "data/images/train/0.png", "data/model.safetensors"]
    assert lines == [
        f"sha256:{hashlib.sha256((project / p).read_bytes()).hexdigest()}  {os.path.normpath(p)}"
        for p in paths
    ]
    code, out, _ = run(capsys, "hash", "--algorithm", "md5", "data/images/1.png")
    expected = hashlib.md5((project / "data/images/1.png").read_bytes()).hexdigest()
    assert out == f"md5:{expected}  data/images/1.png\n"


def test_module_entry_point_runs(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_mlsupply", "hash", "data/model.safetensors"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sha256:")


@pytest.mark.skipif(os.name != "posix", reason="byte file names are POSIX")
@pytest.mark.parametrize("where", ["inside", "root"])
def test_data_add_refuses_a_name_that_is_not_utf8(project: Path, where: str) -> None:
    """Found in the issue: ``data add`` died with UnicodeEncodeError writing the TOML."""
    if where == "inside":
        (project / "data" / "images" / os.fsdecode(b"\xff.png")).write_bytes(b"x")
        target, shown = b"data/images", "\\xff.png"
    else:
        (project / os.fsdecode(b"data/\xfeset")).mkdir()
        (project / os.fsdecode(b"data/\xfeset/a.bin")).write_bytes(b"a")
        target, shown = b"data/\xfeset", "data/\\xfeset"
    result = subprocess.run(
        [sys.executable, "-m", "pytest_mlsupply", "data", "add", "x", os.fsdecode(target)],
        capture_output=True,
        check=False,
    )
    err = result.stderr.decode("utf-8")
    assert result.returncode == EXIT_UNUSABLE, err
    assert MSG_NOT_UTF8.format(file=shown) in err
    assert "Traceback" not in err
    assert not (project / "mlsupply-data.toml").exists()

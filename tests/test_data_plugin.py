"""The verified_data marker and fixture as users run them: pytester suites on real files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from pytest_mlsupply.datasets import (
    MSG_ABSOLUTE_PATH,
    MSG_ADDED,
    MSG_CHANGED,
    MSG_ESCAPES,
    MSG_LFS_POINTER,
    MSG_MISSING,
    MSG_NOT_UTF8,
    MSG_REMOVED,
    MSG_SPECIAL_FILE,
    MSG_SYMLINK_OUT,
    MSG_UNKNOWN_DATASET,
    add_to_manifest,
    load_manifest,
)
from pytest_mlsupply.fixtures import MSG_FIXTURE_WITHOUT_MARKER, MSG_MARKER_ARGS, MSG_UPDATED
from pytest_mlsupply.hashing import hash_file

SHARDS = ("shard-000.bin", "shard-001.bin", "nested/shard-002.bin")

SUITE = """
import pytest

@pytest.mark.verified_data("shards")
def test_reads_shards(verified_data):
    root = verified_data["shards"]
    assert (root / "shard-000.bin").stat().st_size == 4096

@pytest.mark.verified_data("shards")
class TestTraining:
    def test_epoch(self, verified_data):
        assert verified_data["shards"].is_dir()

@pytest.mark.verified_data("weights")
def test_weights(verified_data):
    assert verified_data["weights"].read_bytes().startswith(b"weights")

def test_unmarked():
    pass
"""


def make_data(root: Path) -> None:
    for index, name in enumerate(SHARDS):
        path = root / "data" / "shards" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes((index * 7 + i) % 256 for i in range(4096)))
    (root / "data" / "weights.bin").write_bytes(b"weights" + bytes(range(256)) * 4)


@pytest.fixture
def data_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    make_data(pytester.path)
    manifest = pytester.path / "mlsupply-data.toml"
    add_to_manifest(manifest, "shards", pytester.path / "data" / "shards")
    add_to_manifest(manifest, "weights", pytester.path / "data" / "weights.bin")
    pytester.makepyfile(test_data=SUITE)
    return pytester


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_untouched_data_passes_under_strict_markers(data_suite: pytest.Pytester) -> None:
    result = data_suite.runpytest("--strict-markers", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["*mlsupply: verified data: shards (ok, hashed 3 files), weights (ok, hashed 1 file)"]
    )


def test_one_changed_byte_fails_only_the_tests_of_that_dataset(data_suite: pytest.Pytester) -> None:
    shard = data_suite.path / "data" / "shards" / "shard-001.bin"
    expected = load_manifest(data_suite.path / "mlsupply-data.toml").datasets["shards"]
    assert expected.files is not None
    flip_byte(shard)
    result = data_suite.runpytest("--strict-markers")
    result.assert_outcomes(passed=2, errors=2)
    line = MSG_CHANGED.format(
        file="shard-001.bin", expected=expected.files["shard-001.bin"], actual=hash_file(shard)
    )
    # The short summary repeats the message in full on CI (pytest truncates it elsewhere).
    errors_section = result.stdout.str().split("short test summary info")[0]
    assert line in errors_section
    assert errors_section.count(line) == 2  # both shard tests, verified once
    assert "shard-000.bin" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*ERROR at setup of test_reads_shards*"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("add", MSG_ADDED.format(file="nested/extra.bin")),
        ("remove", MSG_REMOVED.format(file="shard-000.bin")),
        ("rename", MSG_REMOVED.format(file="shard-000.bin")),
    ],
)
def test_directory_diff_names_the_file(
    data_suite: pytest.Pytester, change: str, expected: str
) -> None:
    shards = data_suite.path / "data" / "shards"
    if change == "add":
        (shards / "nested" / "extra.bin").write_bytes(b"extra")
    elif change == "remove":
        (shards / "shard-000.bin").unlink()
    else:
        (shards / "shard-000.bin").rename(shards / "shard-00.bin")
    result = data_suite.runpytest()
    result.assert_outcomes(passed=2, errors=2)
    assert expected in result.stdout.str()
    if change == "rename":
        assert MSG_ADDED.format(file="shard-00.bin") in result.stdout.str()


def test_symlink_out_of_the_dataset_is_refused(data_suite: pytest.Pytester) -> None:
    outside = data_suite.path / "outside.bin"
    outside.write_bytes(b"not part of the dataset")
    link = data_suite.path / "data" / "shards" / "link.bin"
    link.symlink_to(outside)
    result = data_suite.runpytest()
    result.assert_outcomes(passed=2, errors=2)
    message = MSG_SYMLINK_OUT.format(file="link.bin", target=os.path.realpath(outside))
    assert message in result.stdout.str()


def test_symlink_inside_the_dataset_is_followed(data_suite: pytest.Pytester) -> None:
    shards = data_suite.path / "data" / "shards"
    (shards / "alias.bin").symlink_to(shards / "shard-000.bin")
    add_to_manifest(data_suite.path / "mlsupply-data.toml", "shards", shards)
    data_suite.runpytest().assert_outcomes(passed=4)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../elsewhere", MSG_ESCAPES),
        ("data/../../elsewhere", MSG_ESCAPES),
        ("/srv/data", MSG_ABSOLUTE_PATH),
    ],
)
def test_manifest_paths_escaping_the_rootdir_are_refused(
    data_suite: pytest.Pytester, path: str, message: str
) -> None:
    manifest = data_suite.path / "mlsupply-data.toml"
    text = manifest.read_text(encoding="utf-8").replace(
        'path = "data/weights.bin"', f'path = "{path}"'
    )
    manifest.write_text(text, encoding="utf-8")
    result = data_suite.runpytest()
    result.assert_outcomes(passed=1, errors=3)
    shown = message.format(key="datasets.weights.path", value=path, base=data_suite.path)
    assert shown in result.stdout.str()


def test_missing_data_fails_or_skips(data_suite: pytest.Pytester) -> None:
    (data_suite.path / "data" / "weights.bin").unlink()
    manifest = data_suite.path / "mlsupply-data.toml"
    message = MSG_MISSING.format(
        name="weights", path=data_suite.path / "data" / "weights.bin", manifest=manifest
    )
    failing = data_suite.runpytest()
    failing.assert_outcomes(passed=3, errors=1)
    assert message in failing.stdout.str()
    skipping = data_suite.runpytest("--mlsupply-missing-data=skip", "-rs")
    skipping.assert_outcomes(passed=3, skipped=1)
    assert "data not found at" in skipping.stdout.str()
    data_suite.makeini("[pytest]\nmlsupply_missing_data = skip\n")
    data_suite.runpytest().assert_outcomes(passed=3, skipped=1)


def test_bad_missing_data_ini_value_names_its_source(data_suite: pytest.Pytester) -> None:
    data_suite.makeini("[pytest]\nmlsupply_missing_data = ignore\n")
    result = data_suite.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mlsupply_missing_data*expected one of fail or skip*'ignore'*"])


def test_unknown_dataset_name_is_a_clear_error(data_suite: pytest.Pytester) -> None:
    data_suite.makepyfile(
        test_unknown="""
        import pytest

        @pytest.mark.verified_data("imagenet")
        def test_unknown(verified_data):
            pass
        """
    )
    result = data_suite.runpytest()
    result.assert_outcomes(passed=4, errors=1)
    message = MSG_UNKNOWN_DATASET.format(
        name="imagenet",
        manifest=data_suite.path / "mlsupply-data.toml",
        known="'shards', 'weights'",
    )
    assert message in result.stdout.str()


def test_fixture_without_marker_says_what_to_add(data_suite: pytest.Pytester) -> None:
    data_suite.makepyfile(test_nomark="def test_x(verified_data):\n    pass\n")
    result = data_suite.runpytest("test_nomark.py")
    result.assert_outcomes(errors=1)
    assert MSG_FIXTURE_WITHOUT_MARKER in result.stdout.str()


@pytest.mark.parametrize(
    ("arguments", "shown"), [("", "nothing"), ("3", 3), ("name='weights'", {"name": "weights"})]
)
def test_marker_arguments_are_checked(
    data_suite: pytest.Pytester, arguments: str, shown: object
) -> None:
    data_suite.makepyfile(
        test_args=f"import pytest\n\n@pytest.mark.verified_data({arguments})\n"
        "def test_x():\n    pass\n"
    )
    result = data_suite.runpytest("test_args.py")
    result.assert_outcomes(errors=1)
    assert MSG_MARKER_ARGS.format(value=shown) in result.stdout.str()


def test_no_manifest_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=3)
    result.stdout.fnmatch_lines(["*no data manifest at*data add NAME PATH*"])


def test_marker_alone_guards_the_test(data_suite: pytest.Pytester) -> None:
    """A test need not request the fixture: the marker is enough to refuse bad bytes."""
    data_suite.makepyfile(
        test_markonly="""
        import pytest

        @pytest.mark.verified_data("weights")
        def test_uses_weights_by_path():
            pass
        """
    )
    flip_byte(data_suite.path / "data" / "weights.bin")
    data_suite.runpytest("test_markonly.py").assert_outcomes(errors=1)


def test_warm_rerun_uses_the_cache_and_sees_changes(data_suite: pytest.Pytester) -> None:
    data_suite.runpytest().assert_outcomes(passed=4)
    warm = data_suite.runpytest()
    warm.assert_outcomes(passed=4)
    warm.stdout.fnmatch_lines(["*shards (ok, unchanged since verified)*"])
    flip_byte(data_suite.path / "data" / "shards" / "shard-000.bin")
    changed = data_suite.runpytest()
    changed.assert_outcomes(passed=2, errors=2)
    # Only the changed file is read again: the others' digests come from the hash cache.
    changed.stdout.fnmatch_lines(["*shards (mismatch, hashed 1 file)*"])


def test_rehash_ignores_the_verdict_cache(data_suite: pytest.Pytester) -> None:
    data_suite.runpytest().assert_outcomes(passed=4)
    result = data_suite.runpytest("--mlsupply-rehash")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*shards (ok, hashed 3 files)*"])


def test_works_without_the_cache_provider(data_suite: pytest.Pytester) -> None:
    for _ in range(2):
        result = data_suite.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(passed=4)
        result.stdout.fnmatch_lines(["*shards (ok, hashed 3 files)*"])


def test_update_data_rerecords_every_dataset(data_suite: pytest.Pytester) -> None:
    flip_byte(data_suite.path / "data" / "weights.bin")
    (data_suite.path / "data" / "shards" / "new.bin").write_bytes(b"new shard")
    result = data_suite.runpytest("--mlsupply-update-data")
    result.assert_outcomes(passed=4)
    manifest = data_suite.path / "mlsupply-data.toml"
    assert MSG_UPDATED.format(count=2, path=manifest) in result.stdout.str()
    entry = load_manifest(manifest).datasets["shards"]
    assert entry.files is not None and "new.bin" in entry.files
    data_suite.runpytest().assert_outcomes(passed=4)


def test_manifest_from_the_ini_key(data_suite: pytest.Pytester) -> None:
    """The manifest may live in a sub-folder and name data beside it, inside the rootdir."""
    conf = data_suite.mkdir("conf")
    (data_suite.path / "mlsupply-data.toml").rename(conf / "data.toml")
    text = (conf / "data.toml").read_text(encoding="utf-8").replace('"data/', '"../data/')
    (conf / "data.toml").write_text(text, encoding="utf-8")
    data_suite.makeini("[pytest]\nmlsupply_data = conf/data.toml\n")
    data_suite.runpytest().assert_outcomes(passed=4)
    flip_byte(data_suite.path / "data" / "weights.bin")
    result = data_suite.runpytest()
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*dataset 'weights' (*) does not match *data.toml:"])


def test_weak_algorithm_is_flagged(data_suite: pytest.Pytester) -> None:
    manifest = data_suite.path / "mlsupply-data.toml"
    add_to_manifest(manifest, "weights", data_suite.path / "data" / "weights.bin", algorithm="md5")
    result = data_suite.runpytest()
    result.assert_outcomes(passed=4, warnings=1)
    result.stdout.fnmatch_lines(["*WeakDigestWarning: dataset 'weights' is verified with md5*"])
    result.stdout.fnmatch_lines(["*verified data: *weights (ok, hashed 1 file; md5: weak hash)"])
    assert "shards (ok, hashed 3 files)," in result.stdout.str()  # sha256: nothing added


def test_registry_dataset_and_git_lfs_pointer(pytester: pytest.Pytester, realdata: Path) -> None:
    pointer = realdata / "data-registries" / "git-lfs" / "lerobot" / "tests" / "artifacts"
    pointer = pointer / "policies" / "pusht_diffusion_" / "actions.safetensors"
    data = pytester.mkdir("artifacts")
    (data / "actions.safetensors").write_bytes(pointer.read_bytes())
    (data / "notes.txt").write_bytes(b"notes\n")
    oid = pointer.read_text(encoding="ascii").split("oid sha256:")[1].split()[0]
    notes = hash_file(data / "notes.txt")
    (data / "registry.txt").write_text(
        f"# pooch registry\nactions.safetensors {oid}\nnotes.txt {notes.hex}\n", encoding="utf-8"
    )
    (pytester.path / "mlsupply-data.toml").write_text(
        '[datasets.policy]\npath = "artifacts"\nregistry = "artifacts/registry.txt"\n'
        'format = "pooch"\n',
        encoding="utf-8",
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.verified_data("policy")
        def test_policy(verified_data):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    message = MSG_LFS_POINTER.format(
        file="actions.safetensors",
        expected=f"sha256:{oid}",
        actual=hash_file(data / "actions.safetensors"),
    )
    assert message in result.stdout.str()
    assert "notes.txt" not in result.stdout.str()


def test_malformed_published_registry_is_reported(
    pytester: pytest.Pytester, realdata: Path
) -> None:
    registry = realdata / "data-registries" / "pythia-datasets" / "registry.txt"
    (pytester.path / "registry.txt").write_bytes(registry.read_bytes())
    (pytester.path / "mlsupply-data.toml").write_text(
        '[datasets.pythia]\npath = "."\nregistry = "registry.txt"\nformat = "pooch"\n',
        encoding="utf-8",
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.verified_data("pythia")
        def test_pythia():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*registry.txt: line 6: daymet_v4_precip_sept_2013.nc: sha256 digest has 63 hex "
            "digits, expected 64*"
        ]
    )


def test_xdist_workers_hash_each_dataset_once(data_suite: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    sources = data_suite.mkdir("sources")
    data_suite.makepyfile(
        test_many=f"""
        import os
        import pytest

        @pytest.mark.parametrize("n", range(40))
        @pytest.mark.verified_data("shards")
        def test_many(verified_data, n):
            with open(os.path.join({str(sources)!r}, str(os.getpid())), "a") as f:
                f.write(verified_data.verdicts["shards"].source + "\\n")
        """
    )
    result = data_suite.runpytest_subprocess("-n", "2", "test_many.py")
    result.assert_outcomes(passed=40)
    seen = [line for f in sources.iterdir() for line in f.read_text().splitlines()]
    assert len(seen) == 40
    per_process = {f.name: set(f.read_text().split()) for f in sources.iterdir()}
    assert sum("hashed" in kinds for kinds in per_process.values()) == 1, per_process
    cache = data_suite.path / ".pytest_cache" / "d" / "mlsupply-data"
    verdicts = [json.loads(p.read_text()) for p in cache.glob("*.json") if ".hashes" not in p.name]
    assert [v["status"] for v in verdicts] == ["ok"]
    # The controller's summary says the same: one worker hashed, any other reused its verdict.
    summary = result.stdout.str()
    assert summary.count("hashed 3 files") == 1, summary
    result.stdout.fnmatch_lines(["mlsupply: verified data: shards (ok, *hashed 3 files*)"])


def test_help_lists_the_data_options_and_ini_keys(pytester: pytest.Pytester) -> None:
    text = pytester.runpytest("--help").stdout.str()
    for name in (
        "--mlsupply-data",
        "--mlsupply-update-data",
        "--mlsupply-missing-data",
        "mlsupply_data ",
        "mlsupply_missing_data",
    ):
        assert name in text
    markers = pytester.runpytest("--markers").stdout.str()
    assert "@pytest.mark.verified_data(*names)" in markers


def test_dvc_and_sha256sum_registries_as_sources(pytester: pytest.Pytester) -> None:
    """A .dvc file (md5, flagged weak) and sha256sum output name the expected digests."""
    data = pytester.mkdir("data")
    (data / "data.xml").write_bytes(b"<posts>" + b"<row/>" * 1000 + b"</posts>")
    (data / "labels.csv").write_bytes(b"id,label\n1,cat\n")
    md5 = hashlib.md5((data / "data.xml").read_bytes()).hexdigest()
    (data / "data.xml.dvc").write_text(
        f"outs:\n- md5: {md5}\n  size: 6015\n  hash: md5\n  path: data.xml\n", encoding="utf-8"
    )
    sha = hashlib.sha256((data / "labels.csv").read_bytes()).hexdigest()
    (data / "SHA256SUMS").write_text(f"{sha} *labels.csv\n", encoding="utf-8")
    (pytester.path / "mlsupply-data.toml").write_text(
        '[datasets.xml]\npath = "data"\nregistry = "data/data.xml.dvc"\nformat = "dvc"\n\n'
        '[datasets.labels]\npath = "data"\nregistry = "data/SHA256SUMS"\nformat = "sha256sum"\n',
        encoding="utf-8",
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.verified_data("xml")
        def test_xml(verified_data):
            assert (verified_data["xml"] / "data.xml").is_file()

        @pytest.mark.verified_data("labels")
        def test_labels():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*WeakDigestWarning: dataset 'xml' is verified with md5*"])
    (data / "labels.csv").write_bytes(b"id,label\n1,dog\n")
    changed = pytester.runpytest()
    changed.assert_outcomes(passed=1, errors=1, warnings=1)
    changed.stdout.fnmatch_lines([f"  changed: labels.csv: expected sha256:{sha}, actual sha256:*"])


def test_a_verified_file_a_known_bad_list_names_fails_its_dataset(
    data_suite: pytest.Pytester,
) -> None:
    """Bytes that match the manifest can still be bad bytes: known-bad lists apply to data."""
    shard = data_suite.path / "data" / "shards" / "nested" / "shard-002.bin"
    digest = hashlib.sha256(shard.read_bytes()).hexdigest()
    (data_suite.path / "bad-hashes.txt").write_text(
        f"# model files seen in an incident\nsha256:{digest} poisoned shard\n"
    )
    result = data_suite.runpytest("--mlsupply-known-bad", "bad-hashes.txt", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*dataset 'shards' (*) matches *mlsupply-data.toml, but holds files known to be bad:",
            f"*known bad: *shard-002.bin: digest sha256:{digest} (bad-hashes.txt:2): "
            "*poisoned shard*",
        ]
    )
    # The same run without the list: all clean.
    data_suite.runpytest("-p", "no:randomly").assert_outcomes(passed=4)


def test_a_broken_known_bad_feed_is_a_warning_for_data_not_a_crash(
    data_suite: pytest.Pytester,
) -> None:
    (data_suite.path / "broken.json").write_text("{not json")
    result = data_suite.runpytest("--mlsupply-known-bad", "broken.json", "-p", "no:randomly")
    result.assert_outcomes(passed=4, warnings=1)
    result.stdout.fnmatch_lines(["*KnownBadFeedWarning: mlsupply: known-bad feed*broken.json*"])


# --- fail closed: no cached pass outlives a failure; hostile names never crash (issue 8, 9) ---

PAYLOAD_SUITE = """
import pathlib
import pytest

@pytest.mark.verified_data("shards")
def test_trains_on_shards(verified_data):
    pathlib.Path("payload-ran").write_text("the test body ran on unverified data")
"""


@pytest.fixture
def payload_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    make_data(pytester.path)
    add_to_manifest(pytester.path / "mlsupply-data.toml", "shards", pytester.path / "data/shards")
    pytester.makepyfile(test_payload=PAYLOAD_SUITE)
    first = pytester.runpytest_subprocess()
    first.assert_outcomes(passed=1)
    (pytester.path / "payload-ran").unlink()
    pytester.runpytest_subprocess().stdout.fnmatch_lines(
        ["*shards (ok, unchanged since verified)*"]
    )
    (pytester.path / "payload-ran").unlink()
    return pytester


@pytest.mark.skipif(os.name != "posix", reason="FIFOs and byte file names are POSIX")
@pytest.mark.parametrize("hostile", ["link to a project file", "fifo", "name not UTF-8"])
def test_a_rehash_failure_is_not_forgotten_by_the_warm_run(
    payload_suite: pytest.Pytester, hostile: str
) -> None:
    """Found in the issue: after a --mlsupply-rehash run reported a symlink leading out of the
    dataset, the next (warm) run passed; so did a FIFO beside an exact ``files`` table."""
    shards = payload_suite.path / "data" / "shards"
    if hostile == "link to a project file":
        (shards / "extra.py").symlink_to(payload_suite.path / "test_payload.py")
        target = os.path.realpath(payload_suite.path / "test_payload.py")
        problem = MSG_SYMLINK_OUT.format(file="extra.py", target=target)
    elif hostile == "fifo":
        os.mkfifo(shards / "nested" / "pipe")
        problem = MSG_SPECIAL_FILE.format(file="nested/pipe", kind="FIFO")
    else:
        (shards / os.fsdecode(b"\xff.bin")).write_bytes(b"hidden")
        problem = MSG_NOT_UTF8.format(file="\\xff.bin")
    for args in (["--mlsupply-rehash"], [], []):
        result = payload_suite.runpytest_subprocess(*args)
        result.assert_outcomes(errors=1)
        assert problem in result.stdout.str()
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
        assert not (payload_suite.path / "payload-ran").exists()


@pytest.mark.skipif(os.name != "posix", reason="byte file names are POSIX")
def test_update_data_refuses_a_name_that_is_not_utf8(payload_suite: pytest.Pytester) -> None:
    manifest = payload_suite.path / "mlsupply-data.toml"
    before = manifest.read_bytes()
    (payload_suite.path / "data" / "shards" / os.fsdecode(b"x\xfe.bin")).write_bytes(b"x")
    result = payload_suite.runpytest_subprocess("--mlsupply-update-data")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert MSG_NOT_UTF8.format(file="x\\xfe.bin") in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert manifest.read_bytes() == before
    assert not (payload_suite.path / "payload-ran").exists()

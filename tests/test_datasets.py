"""The data manifest, tree digests and verify_file/verify_tree, without pytest in the loop."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import pytest_mlsupply
from pytest_mlsupply.datasets import (
    MSG_ADDED,
    MSG_CHANGED,
    MSG_DANGLING,
    MSG_LFS_POINTER,
    MSG_NOT_UTF8,
    MSG_REMOVED,
    MSG_SPECIAL_FILE,
    MSG_SYMLINK_OUT,
    DataIntegrityError,
    DataManifestError,
    DatasetEntry,
    _cache_key,
    format_manifest,
    load_manifest,
    parse_manifest,
    read_cached_verdict,
    record_entry,
    scan_tree,
    stat_fingerprint,
    tree_digest,
    verified_digests,
    verify_dataset,
)
from pytest_mlsupply.errors import FileProblemsError, MlsupplyError
from pytest_mlsupply.hashing import Digest, hash_bytes, hash_file
from pytest_mlsupply.tomlfile import parse_toml

# --- strategies -------------------------------------------------------------------------------

_segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\0"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))
relative_paths = (
    st.lists(_segment, min_size=1, max_size=3)
    .map("/".join)
    # "C:..." is a Windows drive path, refused as absolute; "0:" is a plain name.
    .filter(lambda p: not (p[1:2] == ":" and p[:1].isascii() and p[:1].isalpha()))
)
algorithms = st.sampled_from(["sha256", "sha512", "blake2b", "sha1", "md5", "sha3_256"])


@st.composite
def digests(draw: st.DrawFn) -> Digest:
    algorithm = draw(algorithms)
    size = hashlib.new(algorithm).digest_size
    return Digest(algorithm, draw(st.binary(min_size=size, max_size=size)))


file_maps = st.dictionaries(relative_paths, digests(), min_size=1, max_size=8)
names = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)


@st.composite
def entries(draw: st.DrawFn, name: str) -> DatasetEntry:
    path = draw(relative_paths)
    if draw(st.booleans()):
        return DatasetEntry(name, path, digest=draw(digests()))
    files = draw(file_maps)
    return DatasetEntry(name, path, files=files, tree=tree_digest(files))


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, DatasetEntry]:
    keys = draw(st.lists(names, min_size=0, max_size=4, unique=True))
    return {key: draw(entries(key)) for key in keys}


# --- properties -------------------------------------------------------------------------------


@given(manifests())
@settings(max_examples=60, deadline=None)
def test_manifest_round_trip(datasets: dict[str, DatasetEntry]) -> None:
    text = format_manifest(datasets)
    document, problem = parse_toml(text)
    assert problem is None and document is not None
    parsed = parse_manifest(document, Path("/project/mlsupply-data.toml"))
    assert dict(parsed.datasets) == datasets
    assert format_manifest(parsed.datasets) == text


@given(file_maps, st.randoms(use_true_random=False))
def test_tree_digest_ignores_order(files: dict[str, Digest], rng: object) -> None:
    pairs = list(files.items())
    shuffled = pairs[:]
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert tree_digest(dict(shuffled)) == tree_digest(files) == tree_digest(pairs)


@given(file_maps, st.data())
def test_tree_digest_sees_any_rename_or_byte_change(
    files: dict[str, Digest], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(files)))
    renamed_to = data.draw(relative_paths.filter(lambda p: p not in files))
    renamed = dict(files)
    renamed[renamed_to] = renamed.pop(name)
    assert tree_digest(renamed) != tree_digest(files)
    original = files[name]
    byte = data.draw(st.integers(0, len(original.value) - 1))
    value = bytearray(original.value)
    value[byte] ^= data.draw(st.integers(1, 255))
    changed = dict(files)
    changed[name] = Digest(original.algorithm, bytes(value))
    assert tree_digest(changed) != tree_digest(files)
    assert tree_digest({k: v for k, v in files.items() if k != name}) != tree_digest(files)


@given(st.text(max_size=300))
@settings(max_examples=200)
def test_any_toml_parses_or_raises_our_error(text: str) -> None:
    document, _ = parse_toml(text)
    if document is None:
        return
    with contextlib.suppress(DataManifestError):
        parse_manifest(document, Path("/p/mlsupply-data.toml"))


def test_tree_digest_on_disk_is_independent_of_creation_order(tmp_path: Path) -> None:
    contents = {f"d{i % 3}/f{i}.bin": os.urandom(64) for i in range(12)}
    roots = [tmp_path / "forward", tmp_path / "backward"]
    for root, order in zip(roots, (sorted(contents), sorted(contents, reverse=True)), strict=True):
        for name in order:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(contents[name])
    trees = [record_entry("d", root, tmp_path).tree for root in roots]
    assert trees[0] == trees[1] is not None


# --- manifest problems ------------------------------------------------------------------------


def test_manifest_problems_are_reported_together_with_dotted_keys(tmp_path: Path) -> None:
    manifest = tmp_path / "mlsupply-data.toml"
    manifest.write_text(
        "[datasets.a]\n"
        'path = "a.bin"\n'
        'digest = "sha256:zz"\n'
        "[datasets.b]\n"
        'path = "b"\n'
        '[datasets.b.files]\n"../x" = "sha256:00"\n'
        "[datasets.c]\n"
        'path = "c"\n'
        'digest = "sha256:' + "00" * 32 + '"\n'
        "files = {}\n"
        "[datasets.d]\n"
        'path = "d"\n'
        'registry = "r.txt"\n'
        'format = "yaml"\n',
        encoding="utf-8",
    )
    with pytest.raises(DataManifestError) as excinfo:
        load_manifest(manifest)
    text = str(excinfo.value)
    assert "datasets.a.digest: 'sha256:zz' is not hexadecimal" in text
    assert "datasets.b.files.\"../x\": '../x' is not a plain relative path" in text
    assert "datasets.c: needs exactly one of 'digest'" in text
    assert "datasets.d.format: expected one of pooch, sha256sum" in text
    assert text.startswith(f"{manifest}: ")


def test_malformed_toml_names_line_and_column(tmp_path: Path) -> None:
    manifest = tmp_path / "mlsupply-data.toml"
    manifest.write_text('[datasets.a]\npath = "x\n', encoding="utf-8")
    with pytest.raises(DataManifestError, match=r"line 2, column \d+: not valid TOML"):
        load_manifest(manifest)


def test_hand_edited_files_table_must_match_its_tree(tmp_path: Path) -> None:
    files = {"a.bin": hash_bytes(b"a")}
    text = format_manifest({"d": DatasetEntry("d", "d", files=files, tree=tree_digest(files))})
    text = text.replace('"a.bin"', '"b.bin"')
    document, _ = parse_toml(text)
    assert document is not None
    with pytest.raises(DataManifestError, match=r"datasets\.d\.tree: .* does not match"):
        parse_manifest(document, tmp_path / "m.toml")


# --- verification -----------------------------------------------------------------------------


def test_verify_file_reports_expected_and_actual(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights")
    good = hash_file(path)
    assert pytest_mlsupply.verify_file(path, str(good)) == path
    bad = hash_bytes(b"other")
    with pytest.raises(pytest_mlsupply.DataIntegrityError) as excinfo:
        pytest_mlsupply.verify_file(path, str(bad))
    assert MSG_CHANGED.format(file="model.bin", expected=bad, actual=good) in str(excinfo.value)
    assert isinstance(excinfo.value, MlsupplyError)
    with pytest.raises(DataIntegrityError, match="data not found"):
        pytest_mlsupply.verify_file(tmp_path / "absent.bin", str(good))
    with pytest.raises(DataIntegrityError, match="not hexadecimal"):
        pytest_mlsupply.verify_file(path, "sha256:xyz")


@pytest.mark.parametrize("algorithm", ["sha256", "sha512", "blake2b", "sha1", "md5", "sha3_512"])
def test_verify_file_accepts_hashlib_algorithms(tmp_path: Path, algorithm: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"data" * 1000)
    expected = f"{algorithm}:{hashlib.new(algorithm, path.read_bytes()).hexdigest()}"
    assert pytest_mlsupply.verify_file(path, expected) == path


def test_verify_tree_gives_an_exact_diff(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(b"a")
    (root / "sub" / "b.bin").write_bytes(b"b")
    expected = {"a.bin": str(hash_bytes(b"a")), "sub/b.bin": str(hash_bytes(b"b"))}
    assert pytest_mlsupply.verify_tree(root, expected) == root
    assert (
        pytest_mlsupply.verify_tree(
            root, tree_digest({k: Digest.parse(v) for k, v in expected.items()})
        )
        == root
    )
    (root / "a.bin").write_bytes(b"A")
    (root / "sub" / "b.bin").unlink()
    (root / "c.bin").write_bytes(b"c")
    (root / "out").symlink_to(tmp_path)
    with pytest.raises(DataIntegrityError) as excinfo:
        pytest_mlsupply.verify_tree(root, expected)
    text = str(excinfo.value)
    changed = MSG_CHANGED.format(file="a.bin", expected=hash_bytes(b"a"), actual=hash_bytes(b"A"))
    assert changed in text
    assert MSG_REMOVED.format(file="sub/b.bin") in text
    assert MSG_ADDED.format(file="c.bin") in text
    assert MSG_SYMLINK_OUT.format(file="out", target=os.path.realpath(tmp_path)) in text


def test_git_lfs_pointer_is_named_as_such(tmp_path: Path, realdata: Path) -> None:
    pointer = next((realdata / "data-registries" / "git-lfs").rglob("frame_0.safetensors"))
    data = tmp_path / "frame_0.safetensors"
    data.write_bytes(pointer.read_bytes())
    oid = pointer.read_text(encoding="ascii").split("oid sha256:")[1].split()[0]
    with pytest.raises(DataIntegrityError) as excinfo:
        pytest_mlsupply.verify_file(data, f"sha256:{oid}")
    message = MSG_LFS_POINTER.format(
        file=data.name, expected=f"sha256:{oid}", actual=hash_file(data)
    )
    assert message in str(excinfo.value)
    assert "this is a Git LFS pointer, not the data" in str(excinfo.value)


def test_verified_digests_is_the_seam_for_known_bad_lists(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    (root / "x.bin").write_bytes(b"x")
    manifest = tmp_path / "mlsupply-data.toml"
    pytest_mlsupply_manifest = {"ds": record_entry("ds", root, tmp_path)}
    manifest.write_text(format_manifest(pytest_mlsupply_manifest), encoding="utf-8")
    verdict = verify_dataset(load_manifest(manifest), "ds")
    assert verdict.ok
    assert verified_digests(verdict) == ((root / "x.bin", hash_bytes(b"x")),)


def test_verdict_cache_skips_hashing_until_a_file_changes(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    for i in range(5):
        (root / f"{i}.bin").write_bytes(bytes([i]) * 100)
    manifest = tmp_path / "mlsupply-data.toml"
    manifest.write_text(format_manifest({"ds": record_entry("ds", root, tmp_path)}), "utf-8")
    cache = tmp_path / "cache"
    cache.mkdir()
    loaded = load_manifest(manifest)
    first = verify_dataset(loaded, "ds", cache_dir=cache)
    assert (first.source, first.files_hashed) == ("hashed", 5)
    assert verify_dataset(loaded, "ds", cache_dir=cache).source == "cache"
    (root / "3.bin").write_bytes(b"\xff" * 100)
    third = verify_dataset(loaded, "ds", cache_dir=cache)
    assert (third.status, third.source, third.files_hashed) == ("mismatch", "hashed", 1)
    assert "changed: 3.bin" in third.message()


def test_a_stale_claim_of_a_dead_process_is_not_waited_for(tmp_path: Path) -> None:
    root = tmp_path / "f.bin"
    root.write_bytes(b"f")
    manifest = tmp_path / "mlsupply-data.toml"
    manifest.write_text(format_manifest({"f": record_entry("f", root, tmp_path)}), "utf-8")
    cache = tmp_path / "cache"
    cache.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    verify_dataset(load_manifest(manifest), "f", cache_dir=cache)
    for verdict_file in cache.glob("*.json"):
        verdict_file.unlink()  # forget the verdict: the next run must hash or wait for one
    key = _cache_key(manifest, "f")
    (cache / f"{key}.claim").write_text(dead, encoding="ascii")
    verdict = verify_dataset(load_manifest(manifest), "f", cache_dir=cache, wait_seconds=30)
    assert verdict.ok and verdict.source == "hashed"


def test_public_api_is_lazy() -> None:
    code = (
        "import sys, pytest_mlsupply, pytest_mlsupply.plugin\n"
        "assert 'pytest_mlsupply.datasets' not in sys.modules\n"
        "assert callable(pytest_mlsupply.verify_file)\n"
        "assert 'pytest_mlsupply.datasets' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("size", [0, 1, (4 << 20) - 1, 4 << 20, (9 << 20) + 123])
def test_read_ahead_hashing_matches_hashlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """Big files are read on a second thread while hashed; chunk edges must not matter."""
    from pytest_mlsupply import hashing

    monkeypatch.setattr(hashing, "_PIPELINE_MIN_SIZE", 0)
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(size))
    expected = hashlib.sha256(path.read_bytes()).digest()
    assert hashing._pipelined_digest(str(path), "sha256") == expected
    run = hashing.hash_many([(str(path), "sha256")], _small_file_limit=0)
    assert run.outcomes[str(path)].digest == Digest("sha256", expected)
    with pytest.raises(IsADirectoryError):
        hashing._pipelined_digest(str(tmp_path), "sha256")


@pytest.mark.parametrize(("value", "refused"), [("C:/data", True), ("c:data", True), ("0:", False)])
def test_only_a_drive_letter_makes_a_path_absolute(
    tmp_path: Path, value: str, refused: bool
) -> None:
    from pytest_mlsupply.datasets import check_relative

    problem = check_relative(value, "datasets.x.path", tmp_path, tmp_path)
    assert (problem is not None and "absolute path" in problem) is refused


# --- fail closed: a cached pass never outlives a failure (issue item 8) ------------------------


def _cached_dataset(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A recorded directory dataset, verified once with a cache: (root, manifest, cache)."""
    root = tmp_path / "ds"
    root.mkdir()
    for name in ("a.bin", "b.bin"):
        (root / name).write_bytes(name.encode() * 50)
    (tmp_path / "project.py").write_bytes(b"a.bin" * 50)  # a project file outside the dataset
    manifest = tmp_path / "mlsupply-data.toml"
    manifest.write_text(format_manifest({"ds": record_entry("ds", root, tmp_path)}), "utf-8")
    cache = tmp_path / "cache"
    cache.mkdir()
    assert verify_dataset(load_manifest(manifest), "ds", cache_dir=cache).ok
    assert verify_dataset(load_manifest(manifest), "ds", cache_dir=cache).source == "cache"
    return root, manifest, cache


def _add_hostile_entry(kind: str, root: Path, project: Path) -> str:
    """Put one thing the manifest cannot vouch for into *root*; the problem it must give."""
    if kind == "link to a project file":
        (root / "link.bin").symlink_to(project / "project.py")
        return MSG_SYMLINK_OUT.format(file="link.bin", target=project / "project.py")
    if kind == "listed file swapped for a link out":
        (root / "a.bin").unlink()
        (root / "a.bin").symlink_to(project / "project.py")  # the same bytes as a.bin had
        return MSG_SYMLINK_OUT.format(file="a.bin", target=project / "project.py")
    if kind == "dangling link":
        (root / "gone.bin").symlink_to(root / "never-there.bin")
        return MSG_DANGLING.format(file="gone.bin", target=root / "never-there.bin")
    if kind == "fifo":
        os.mkfifo(root / "pipe")
        return MSG_SPECIAL_FILE.format(file="pipe", kind="FIFO")
    if kind == "socket":
        import socket

        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(root / "s"))
        return MSG_SPECIAL_FILE.format(file="s", kind="socket")
    assert kind == "name not UTF-8"
    (root / os.fsdecode(b"\xff.bin")).write_bytes(b"x")
    return MSG_NOT_UTF8.format(file="\\xff.bin")


HOSTILE = [
    "link to a project file",
    "listed file swapped for a link out",
    "dangling link",
    "fifo",
    "socket",
    "name not UTF-8",
]


@pytest.mark.skipif(os.name != "posix", reason="FIFOs, sockets and byte file names are POSIX")
@pytest.mark.parametrize("kind", HOSTILE)
def test_a_cached_pass_never_answers_for_a_tree_with_a_problem(tmp_path: Path, kind: str) -> None:
    root, manifest, cache = _cached_dataset(tmp_path)
    problem = _add_hostile_entry(kind, root, tmp_path)
    # warm, then as --mlsupply-rehash does (no cache), then warm again (a cached failure)
    for run, cache_dir in enumerate((cache, None, cache)):
        verdict = verify_dataset(load_manifest(manifest), "ds", cache_dir=cache_dir)
        assert verdict.status == "mismatch", verdict
        assert verdict.source == ("cache" if run == 2 else "hashed")
        assert problem in verdict.problems


@pytest.mark.skipif(os.name != "posix", reason="FIFOs and sockets are POSIX")
def test_a_forged_cached_pass_is_refused_while_the_scan_has_problems(tmp_path: Path) -> None:
    """Even a pass stored under today's exact fingerprint (by a peer, or by hand) is not taken
    while the tree holds something that can only fail, on the cache path and the peer path."""
    root, manifest, cache = _cached_dataset(tmp_path)
    os.mkfifo(root / "pipe")
    loaded = load_manifest(manifest)
    fingerprint = stat_fingerprint(loaded.datasets["ds"].fingerprint_text, root, scan_tree(root))
    verdict_file = cache / f"{_cache_key(manifest, 'ds')}.json"
    forged = json.loads(verdict_file.read_text("utf-8"))
    forged.update(fingerprint=fingerprint, status="ok", problems=[])
    verdict_file.write_text(json.dumps(forged), "utf-8")
    assert read_cached_verdict(verdict_file, fingerprint) is not None  # the forgery is readable
    claim = cache / f"{_cache_key(manifest, 'ds')}.claim"
    for claimed_by_peer in (False, True):
        if claimed_by_peer:  # an xdist worker (alive: this process) holds the claim
            claim.write_text(str(os.getpid()), encoding="ascii")
            verdict_file.write_text(json.dumps(forged), "utf-8")
        verdict = verify_dataset(loaded, "ds", cache_dir=cache, wait_seconds=5)
        assert verdict.status == "mismatch" and verdict.source == "hashed"
        assert MSG_SPECIAL_FILE.format(file="pipe", kind="FIFO") in verdict.problems


def test_retargeting_a_symlink_inside_the_dataset_misses_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "v1").mkdir(parents=True)
    (root / "v2").mkdir()
    (root / "v1" / "w.bin").write_bytes(b"same bytes")
    (root / "v2" / "w.bin").write_bytes(b"same bytes")
    (root / "current").symlink_to("v1")
    manifest = tmp_path / "mlsupply-data.toml"
    manifest.write_text(format_manifest({"ds": record_entry("ds", root, tmp_path)}), "utf-8")
    cache = tmp_path / "cache"
    cache.mkdir()
    assert verify_dataset(load_manifest(manifest), "ds", cache_dir=cache).source == "hashed"
    assert verify_dataset(load_manifest(manifest), "ds", cache_dir=cache).source == "cache"
    (root / "current").unlink()
    (root / "current").symlink_to("v2")
    retargeted = verify_dataset(load_manifest(manifest), "ds", cache_dir=cache)
    assert retargeted.ok and retargeted.source == "hashed"  # judged again, where it leads now
    (root / "current").unlink()
    (root / "current").symlink_to(tmp_path)
    out = verify_dataset(load_manifest(manifest), "ds", cache_dir=cache)
    assert out.status == "mismatch"
    assert MSG_SYMLINK_OUT.format(file="current", target=tmp_path) in out.problems


def test_a_single_file_dataset_that_is_a_symlink_is_judged_by_its_target(tmp_path: Path) -> None:
    (tmp_path / "v1.bin").write_bytes(b"weights v1")
    (tmp_path / "v2.bin").write_bytes(b"weights v2")
    link = tmp_path / "model.bin"
    link.symlink_to("v1.bin")
    manifest = tmp_path / "mlsupply-data.toml"
    manifest.write_text(format_manifest({"m": record_entry("m", link, tmp_path)}), "utf-8")
    cache = tmp_path / "cache"
    cache.mkdir()
    assert verify_dataset(load_manifest(manifest), "m", cache_dir=cache).ok
    link.unlink()
    link.symlink_to("v2.bin")
    verdict = verify_dataset(load_manifest(manifest), "m", cache_dir=cache)
    assert verdict.status == "mismatch" and verdict.source == "hashed"
    link.unlink()
    link.symlink_to("absent.bin")
    assert verify_dataset(load_manifest(manifest), "m", cache_dir=cache).status != "ok"


@pytest.mark.skipif(os.name != "posix", reason="byte file names are POSIX")
def test_a_name_that_is_not_utf8_is_refused_when_recording(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    (root / "ok.bin").write_bytes(b"ok")
    (root / os.fsdecode(b"sub\xfe")).mkdir()
    (root / os.fsdecode(b"sub\xfe") / "x.bin").write_bytes(b"x")
    with pytest.raises(FileProblemsError) as excinfo:
        record_entry("ds", root, tmp_path)
    assert MSG_NOT_UTF8.format(file="sub\\xfe") in str(excinfo.value)
    str(excinfo.value).encode("utf-8")  # printable as it is: no surrogates left in it
    weird_root = tmp_path / os.fsdecode(b"d\xff")
    weird_root.mkdir()
    with pytest.raises(MlsupplyError, match=r"datasets\.w\.path: file name is not UTF-8: d\\xff"):
        record_entry("w", weird_root, tmp_path)


# --- hostile manifests: only our error, always located (issue item 9) --------------------------

_KEYS = ["path", "digest", "files", "tree", "registry", "format", "a.bin", "../x", "", "version"]
_VALUES = st.sampled_from(
    [
        "sha256:" + "00" * 32,
        "md5:" + "0" * 32,
        "shake_128:00",
        "sha256:",
        ":00",
        "nope:00",
        "data",
        "../x",
        "/abs",
        "C:x",
        "a\0b",
        "a/./b",
        "r.txt",
        "pooch",
        "dvc",
    ]
)
_scalars = st.one_of(
    st.booleans(), st.integers(), st.floats(), st.text(max_size=20), _VALUES, st.datetimes()
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6), inner, max_size=5),
    ),
    max_leaves=20,
)
_documents = st.dictionaries(
    st.sampled_from(["version", "datasets", "extra"]),
    st.one_of(_values, st.dictionaries(st.text(max_size=8), _values, max_size=3)),
    max_size=3,
)
_LOCATED = ("version: ", "unknown top-level keys: ", "datasets: ", "datasets.")


@given(st.one_of(_documents, manifests().map(lambda d: {"datasets": d})), st.data())
@settings(max_examples=400, deadline=None)
def test_any_manifest_document_loads_or_raises_located_problems(
    document: dict[str, object], data: st.DataObject
) -> None:
    """Structurally valid and invalid documents, as TOML on disk: ``DataManifestError`` or a
    manifest, nothing else, and every problem starts with the key it is about."""
    import tempfile

    import tomli_w

    if "datasets" in document and isinstance(document["datasets"], dict):
        tables = {k: {**v} if isinstance(v, dict) else v for k, v in document["datasets"].items()}
        for table in tables.values():  # mutate one key of a valid entry, sometimes
            if isinstance(table, dict) and table and data.draw(st.booleans()):
                key = data.draw(st.sampled_from(sorted(table)))
                table[key] = data.draw(_values)
        document = {**document, "datasets": tables}
    try:
        text = tomli_w.dumps(document)
    except (TypeError, ValueError):  # not representable as TOML: check the parsed form only
        text = None
    with tempfile.TemporaryDirectory() as folder:
        manifest = Path(folder) / "mlsupply-data.toml"
        try:
            if text is None:
                parse_manifest(document, manifest)
            else:
                manifest.write_text(text, encoding="utf-8")
                load_manifest(manifest)
        except DataManifestError as exc:
            assert exc.path == str(manifest)
            assert exc.problems
            for problem in exc.problems:
                assert problem.startswith(_LOCATED), problem


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_any_manifest_bytes_load_or_raise_our_error(raw: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        manifest = Path(folder) / "mlsupply-data.toml"
        manifest.write_bytes(raw)
        with contextlib.suppress(DataManifestError):
            load_manifest(manifest)


def test_manifest_nested_too_deeply_is_our_error(tmp_path: Path) -> None:
    manifest = tmp_path / "mlsupply-data.toml"
    manifest.write_text("a = " + "[" * 50_000, encoding="utf-8")
    with pytest.raises(DataManifestError, match="nested too deeply"):
        load_manifest(manifest)


def test_manifest_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    manifest = tmp_path / "mlsupply-data.toml"
    manifest.write_bytes(b'[datasets.a]\npath = "a\xff.bin"\n')
    with pytest.raises(DataManifestError, match=r"not UTF-8 text: line 2: byte 0xff"):
        load_manifest(manifest)


@pytest.mark.skipif(os.name != "posix", reason="FIFOs are POSIX")
def test_manifest_that_is_a_fifo_or_too_big_is_refused_without_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_mlsupply import registries

    manifest = tmp_path / "mlsupply-data.toml"
    os.mkfifo(manifest)
    with pytest.raises(DataManifestError, match=r"not a regular file \(prw"):
        load_manifest(manifest)
    manifest.unlink()
    manifest.write_text("version = 1\n" + "# padding\n" * 200, encoding="utf-8")
    monkeypatch.setattr(registries, "MAX_FILE_BYTES", 1024)
    with pytest.raises(DataManifestError, match="over the 1024-byte limit"):
        load_manifest(manifest)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(["ok", "mismatch", "missing"]) | _json,
            "problems": _json,
            "checked": _json | st.just([["a.bin", "sha256:" + "00" * 32]]),
        },
    )
)
@example({"status": "mismatch", "problems": [], "checked": [["a.bin", 0]]})
@example({"status": "mismatch", "problems": 7, "checked": []})
@settings(max_examples=150, deadline=None)
def test_a_damaged_verdict_cache_costs_a_rehash_never_a_crash_or_a_pass(
    fields: dict[str, object],
) -> None:
    """Any record stored under today's fingerprint: the verdict stays a mismatch (the tree has
    a FIFO) and nothing but a verdict comes out."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        tmp_path = Path(folder)
        root = tmp_path / "ds"
        root.mkdir()
        (root / "a.bin").write_bytes(b"a")
        manifest = tmp_path / "mlsupply-data.toml"
        manifest.write_text(format_manifest({"ds": record_entry("ds", root, tmp_path)}), "utf-8")
        os.mkfifo(root / "pipe")
        loaded = load_manifest(manifest)
        cache = tmp_path / "cache"
        cache.mkdir()
        fingerprint = stat_fingerprint(
            loaded.datasets["ds"].fingerprint_text, root, scan_tree(root)
        )
        record = {"version": 1, "plugin": pytest_mlsupply.__version__, "fingerprint": fingerprint}
        (cache / f"{_cache_key(manifest, 'ds')}.json").write_text(
            json.dumps({**record, **fields}), "utf-8"
        )
        verdict = verify_dataset(loaded, "ds", cache_dir=cache)
        assert verdict.status == "mismatch"


def test_editing_a_registry_misses_the_cached_pass(tmp_path: Path) -> None:
    """A registry keeps the expected digests outside the manifest entry: the cached pass must
    hold for the registry's digests, not only for the entry that names the registry."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a")
    registry = tmp_path / "registry.txt"
    registry.write_text(f"a.bin {hash_bytes(b'a')}\n", encoding="utf-8")
    manifest = tmp_path / "mlsupply-data.toml"
    manifest.write_text(
        '[datasets.ds]\npath = "data"\nregistry = "registry.txt"\nformat = "pooch"\n', "utf-8"
    )
    cache = tmp_path / "cache"
    cache.mkdir()
    assert verify_dataset(load_manifest(manifest), "ds", cache_dir=cache).ok
    assert verify_dataset(load_manifest(manifest), "ds", cache_dir=cache).source == "cache"
    registry.write_text(f"a.bin {hash_bytes(b'a, version 2')}\n", encoding="utf-8")
    verdict = verify_dataset(load_manifest(manifest), "ds", cache_dir=cache)
    assert verdict.status == "mismatch" and verdict.source == "hashed"

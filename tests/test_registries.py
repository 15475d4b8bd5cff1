"""Registry parsers: the real published registries, DVC files, and properties of each format."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_mlsupply.hashing import Digest
from pytest_mlsupply.registries import (
    CHECKSUM_FORMATS,
    MSG_DVC_DIRECTORY,
    MSG_LONG_LINE,
    MSG_VARIABLE,
    REGISTRY_FORMATS,
    RegistryError,
    parse_checksums,
    parse_dvc,
    parse_pooch,
    parse_registry,
    read_registry,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TINY = "baee0894dba14b12085eacb204284b97e362f4f3e5a5807693cc90ef415c1b2d"


def registries(realdata: Path) -> Path:
    return realdata / "data-registries"


def test_pooch_test_registries_load(realdata: Path) -> None:
    base = registries(realdata) / "pooch-tests"
    plain = {r.name: r for r in read_registry(base / "registry.txt", "pooch")}
    assert set(plain) == {"subdir/tiny-data.txt", "tiny-data.txt"}
    assert plain["tiny-data.txt"].digest == Digest("sha256", bytes.fromhex(TINY))
    urls = {r.name: r.url for r in read_registry(base / "registry-custom-url.txt", "pooch")}
    assert urls["tiny-data.txt"] == "https://some-site/tiny-data.txt"
    assert urls["store.zip"] is None
    spaces = read_registry(base / "registry-spaces.txt", "pooch")  # no trailing newline
    assert [r.name for r in spaces] == ["tiny space data.txt"]
    quotes = {r.name: r.url for r in read_registry(base / "registry-quotes.txt", "pooch")}
    assert quotes == {
        "foo'.txt": None,
        "bar'baz quux'.txt": None,
        "foo bar.txt": None,
        "foo bar2.txt": "http://myurl.com",
        "foobar3.txt": "http://myurl.com",
        "foo'2.txt": "http://myurl.com",
    }


def test_pythia_registry_malformed_line_is_reported_precisely(realdata: Path) -> None:
    path = registries(realdata) / "pythia-datasets" / "registry.txt"
    with pytest.raises(RegistryError) as excinfo:
        read_registry(path, "pooch")
    assert excinfo.value.problems == (
        "line 6: daymet_v4_precip_sept_2013.nc: sha256 digest has 63 hex digits, expected 64: "
        "'06d9d950331fa5252d8e962554442804dd9938859137902a4ff43f76aca54c1'",
    )
    assert str(excinfo.value).startswith(str(path))
    records, problems = parse_pooch(path.read_text(encoding="utf-8"))
    assert len(records) == 5 and len(problems) == 1  # the good lines are still read


@pytest.mark.parametrize("project", ["iterative-example-get-started", "dacbd-example-get-started"])
def test_dvc_files_old_and_new_format(realdata: Path, project: str) -> None:
    records = read_registry(registries(realdata) / "dvc" / project / "data.xml.dvc", "dvc")
    assert [(r.name, str(r.digest)) for r in records] == [
        ("data.xml", "md5:a304afb96060aad90176268345e10355")
    ]


def test_dvc_directory_output_is_refused() -> None:
    text = "outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  size: 10\n  path: images\n"
    records, problems = parse_dvc(text)
    assert records == []
    message = MSG_DVC_DIRECTORY.format(name="images", value="0123456789abcdef0123456789abcdef.dir")
    assert problems == [f"line 2: {message}"]


def test_checksum_facts_drive_the_parsers(realdata: Path) -> None:
    """Each published digest, written as each tool writes it, reads back as the same Digest."""
    facts = tomllib.loads((registries(realdata) / "dataset-checksum-facts.toml").read_text("utf-8"))
    by_dataset: dict[str, list[dict[str, str]]] = {}
    for fact in facts["file"]:
        by_dataset.setdefault(fact["dataset"], []).append(fact)
    assert len(facts["file"]) == 30
    for dataset, files in by_dataset.items():
        pooch = "".join(
            f"{f['name']} {f.get('registry_value', f['algorithm'] + ':' + f['digest'])}\n"
            for f in files
        )
        md5sum = "".join(f"{f['digest']}  {f['name']}\n" for f in files)
        tagged = "".join(f"MD5 ({f['name']}) = {f['digest']}\n" for f in files)
        expected = {f["name"]: Digest(f["algorithm"], bytes.fromhex(f["digest"])) for f in files}
        for records, problems in (
            parse_pooch(pooch),
            parse_checksums(md5sum, "md5sum"),
            parse_checksums(tagged, "sha256sum"),  # the tag names the algorithm
        ):
            assert problems == [], dataset
            assert {r.name: r.digest for r in records} == expected, dataset
    mnist = {f["name"]: f["digest"] for f in by_dataset["MNIST"]}
    fashion = {f["name"]: f["digest"] for f in by_dataset["FashionMNIST"]}
    shared = set(mnist) & set(fashion)
    assert shared and all(mnist[n] != fashion[n] for n in shared)  # same name, other bytes


def test_checksum_binary_marker_escapes_and_errors() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    text = (
        f"{digest} *model.bin\n\\{digest}  dir\\\\name\\nline\nnot a line\n{digest[:-1]}  short\n"
    )
    records, problems = parse_checksums(text, "sha256sum")
    assert [r.name for r in records] == ["model.bin", "dir\\name\nline"]
    assert (
        problems[0] == "line 3: expected '<hex>  <name>' as sha256sum writes it, got 'not a line'"
    )
    assert problems[1].startswith("line 4: short: sha256 digest has 63 hex digits, expected 64")


def test_conflicting_duplicate_names_are_reported() -> None:
    records, problems = parse_pooch(f"a.txt {TINY}\na.txt md5:{'0' * 32}\n")
    assert len(records) == 1
    assert problems == ["line 2: a.txt: listed twice (first on line 1)"]


# --- properties -------------------------------------------------------------------------------

_plain_name = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters='"#\\'
    ),
    min_size=1,
    max_size=20,
)
_algorithm = st.sampled_from(["sha256", "sha512", "md5", "sha1", "blake2b"])


@st.composite
def _records(draw: st.DrawFn) -> dict[str, Digest]:
    keys = draw(st.lists(_plain_name, min_size=1, max_size=6, unique=True))
    algorithm = draw(_algorithm)
    size = hashlib.new(algorithm).digest_size
    return {k: Digest(algorithm, draw(st.binary(min_size=size, max_size=size))) for k in keys}


@given(_records(), st.booleans())
def test_pooch_format_then_parse(records: dict[str, Digest], quote: bool) -> None:
    lines = []
    for name, digest in records.items():
        shown = f'"{name}"' if quote else name
        hashed = digest.hex if digest.algorithm == "sha256" else str(digest)
        lines.append(f"{shown} {hashed}")
    parsed, problems = parse_pooch("# registry\n" + "\n".join(lines))
    assert problems == []
    assert {r.name: r.digest for r in parsed} == records


@given(_records(), st.sampled_from(sorted(CHECKSUM_FORMATS)), st.booleans())
def test_checksum_format_then_parse(records: dict[str, Digest], tool: str, binary: bool) -> None:
    algorithm = CHECKSUM_FORMATS[tool]
    size = hashlib.new(algorithm).digest_size
    fixed = {n: Digest(algorithm, (d.value * size)[:size]) for n, d in records.items()}
    text = "".join(f"{d.hex} {'*' if binary else ' '}{n}\n" for n, d in fixed.items())
    parsed, problems = parse_checksums(text, tool)
    assert problems == []
    assert {r.name: r.digest for r in parsed} == fixed


@given(st.text(max_size=400), st.sampled_from(["pooch", "sha256sum", "md5sum", "dvc"]))
@settings(max_examples=300)
def test_any_text_gives_records_or_located_problems(text: str, fmt: str) -> None:
    parser = {
        "pooch": parse_pooch,
        "dvc": parse_dvc,
        "sha256sum": lambda t: parse_checksums(t, "sha256sum"),
        "md5sum": lambda t: parse_checksums(t, "md5sum"),
    }[fmt]
    records, problems = parser(text)
    for problem in problems:
        assert problem.startswith("line ") or problem.startswith("no 'outs'")
    for record in records:
        assert isinstance(record.digest, Digest)


# --- hostile registries: only RegistryError, every problem on its line (issue item 9) ---------

_alg = st.sampled_from(
    ["sha256", "md5", "shake_128", "SHA256", "blake2b", "sha3_256", "x", "", "\0", "sha2-256"]
)
_hex = st.one_of(st.text("0123456789abcdefABCDEF", max_size=130), st.text(max_size=10))
_name = st.text(max_size=12)
_registry_line = st.one_of(
    st.builds("{} {}:{}".format, _name, _alg, _hex),  # pooch
    st.builds('"{}" {} {}'.format, _name, _hex, st.text(max_size=8)),
    st.builds("{} {}{}".format, _hex, st.sampled_from([" ", "*", "^", "x"]), _name),  # GNU
    st.builds("{}{} ({}) = {}".format, st.sampled_from(["", "\\"]), _alg, _name, _hex),  # BSD
    st.builds(  # DVC
        "{}{}{}: {}".format,
        st.sampled_from(["", "  ", "    "]),
        st.sampled_from(["", "- "]),
        st.sampled_from(["md5", "path", "hash", "size", "outs", "wdir"]),
        st.one_of(_hex, _name),
    ),
    st.text(max_size=20),
)


@given(st.lists(_registry_line, max_size=10).map("\n".join), st.sampled_from(REGISTRY_FORMATS))
@settings(max_examples=600, deadline=None)
def test_structured_lines_give_records_or_problems_on_their_line(text: str, fmt: str) -> None:
    """Lines shaped like each format, valid and broken (found: ``name shake_128:0`` raised
    ValueError from ``bytes.fromhex``)."""
    records, problems = parse_registry(text, fmt)
    count = len(text.splitlines())
    for problem in problems:
        if problem == "no 'outs' entry with 'path' and 'md5'":
            continue
        assert problem.startswith("line "), problem
        assert 1 <= int(problem.split(":")[0].removeprefix("line ")) <= count
    for record in records:
        assert 1 <= record.line <= count
        assert len(record.digest.value) == hashlib.new(record.digest.algorithm).digest_size


@given(st.binary(max_size=400), st.sampled_from(REGISTRY_FORMATS))
@settings(max_examples=200, deadline=None)
def test_any_registry_file_reads_or_raises_registry_error(raw: bytes, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "registry.txt"
        path.write_bytes(raw)
        try:
            read_registry(path, fmt)
        except RegistryError as exc:
            assert exc.path == str(path) and exc.problems


def test_variable_length_algorithm_is_a_located_problem() -> None:
    _, problems = parse_pooch("a.bin shake_128:0\n")
    assert problems == ["line 1: " + MSG_VARIABLE.format(name="a.bin", algorithm="shake_128")]


def test_limits_line_length_size_and_file_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_mlsupply import registries as module

    long = "x" * (module.MAX_LINE_CHARS + 1)
    for fmt in ("pooch", "sha256sum", "dvc"):
        _, problems = parse_registry(f"# ok\n{long} {TINY}\n", fmt)
        expected = MSG_LONG_LINE.format(line=2, limit=module.MAX_LINE_CHARS, count=len(long) + 65)
        assert expected in problems
        assert all(len(p) < 300 for p in problems)  # never the whole line echoed back
    path = tmp_path / "registry.txt"
    path.write_text(f"a.bin {TINY}\n" * 100, encoding="utf-8")
    monkeypatch.setattr(module, "MAX_FILE_BYTES", 1000)
    with pytest.raises(RegistryError, match="over the 1000-byte limit"):
        read_registry(path, "pooch")
    path.write_bytes(b"a.bin " + TINY.encode() + b"\n\xfe.bin " + TINY.encode() + b"\n")
    with pytest.raises(RegistryError, match="not UTF-8 text: line 2: byte 0xfe"):
        read_registry(path, "pooch")
    with pytest.raises(RegistryError, match="not a regular file \\(a directory\\)"):
        read_registry(tmp_path, "pooch")
    if os.name == "posix":
        fifo = tmp_path / "fifo.txt"
        os.mkfifo(fifo)
        with pytest.raises(RegistryError, match="not a regular file"):
            read_registry(fifo, "sha256sum")  # opened without blocking: no hang

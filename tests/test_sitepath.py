"""The import path ``site`` would build, computed under ``-I -S`` without running the environment.

Compared with the real ``sys.path`` of real interpreters and venvs: emulate, don't approximate.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest_mlsupply.sitepath
from pytest_mlsupply.cli import EXIT_UNUSABLE, PYTHON_HIDES_SITE, main, parse_description
from pytest_mlsupply.errors import MlsupplyError
from pytest_mlsupply.sitepath import _add_site_dir

SCRIPT = Path(pytest_mlsupply.sitepath.__file__)
OTHER_PYTHONS = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[0-9]*/bin/python3")))


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST_"))}
    env.update(extra)
    return env


def static_path(python: str | Path, **env: str) -> list[str]:
    out = subprocess.run(
        [str(python), "-I", "-S", str(SCRIPT)],
        capture_output=True,
        text=True,
        check=True,
        env=_clean_env(**env),
    )
    return list(json.loads(out.stdout)["path"])


def real_path(python: str | Path, cwd: Path, **env: str) -> list[str]:
    out = subprocess.run(
        [str(python), "-c", "import json, sys; print(json.dumps(sys.path))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        env=_clean_env(**env),
    )
    return [entry for entry in json.loads(out.stdout) if entry]


@pytest.mark.parametrize("python", [sys.executable, *OTHER_PYTHONS])
def test_static_path_is_the_real_path(python: str, tmp_path: Path) -> None:
    assert static_path(python) == real_path(python, tmp_path)


@pytest.mark.parametrize("system_site", [False, True])
def test_venv_with_pth_files_path_lines_followed_import_lines_not_run(
    tmp_path: Path, system_site: bool
) -> None:
    root = tmp_path / "venv"
    flags = ["--system-site-packages"] if system_site else []
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", *flags, str(root)], check=True)
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site_dir = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (tmp_path / "models").mkdir()
    (site_dir / "b_paths.pth").write_text(
        f"# a comment\n\n{tmp_path / 'models'}\n../../../missing\nrelative_dir\n"
    )
    (site_dir / "relative_dir").mkdir()
    marker = tmp_path / "marker"
    (site_dir / "a_hook.pth").write_text(f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n")
    static = static_path(python)
    assert not marker.exists(), "the static path ran a .pth import line"
    real = real_path(python, tmp_path)
    assert marker.exists()  # the control: the payload does run at a normal start
    assert static == real
    assert str(tmp_path / "models") in static
    assert str(site_dir / "relative_dir") in static
    extra = tmp_path / "from-pythonpath"
    extra.mkdir()
    assert static_path(python, PYTHONPATH=str(extra)) == real_path(
        python, tmp_path, PYTHONPATH=str(extra)
    )


@pytest.mark.parametrize("python", [sys.executable, *OTHER_PYTHONS])
def test_odd_line_ends_and_encodings_never_hide_a_directory(python: str, tmp_path: Path) -> None:
    """Every directory the real start adds is read, whatever this Python's reading of .pth is."""
    root = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(root)], check=True)
    venv_python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site_dir = Path(
        subprocess.run(
            [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    names = ["a\x0cb", "c", "d", "\u00e9t\u00e9", "g\x85h", "h"]
    for name in names:
        (site_dir / name).mkdir()
    (site_dir / "odd.pth").write_bytes(
        "a\x0cb\rc\x0cd\n\u00e9t\u00e9\n\ufeffc\ng\x85h\n".encode()
    )  # valid UTF-8: an undecodable .pth stops the interpreter before 3.13
    (site_dir / "bom.pth").write_bytes(b"\xef\xbb\xbfd\n")
    static = static_path(venv_python)
    real = real_path(venv_python, tmp_path)
    assert static[: len(real)] == real  # the same order; other readings only add at the end
    # Universal newlines name a<FF>b, ete, g<NEL>h; str.splitlines names c, d, h: all are read.
    assert {str(site_dir / name) for name in names} <= set(static)


def test_python_that_cannot_run_is_unusable_input(tmp_path: Path, capsys) -> None:
    missing = str(tmp_path / "no-python")
    code = main(["check", "--lock", str(tmp_path / "x.lock"), "--python", missing])
    err = capsys.readouterr().err
    assert code == EXIT_UNUSABLE
    assert err.startswith(f"mlsupply: error: --python {missing}: ") and err.count("\n") == 1


@pytest.mark.skipif(os.name == "nt", reason="a shell script stands in for an interpreter")
@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("not json", "did not print its paths as JSON"),
        ('{"path": 1}', "not the keys"),
        (
            '{"path": [1], "site_dirs": [], "implementation": "cpython", "python_version": "3",'
            ' "platform": "x", "markers": []}',
            "printed path, markers of the wrong type",
        ),
    ],
)
def test_python_that_says_nonsense_is_unusable_input(
    tmp_path: Path, capsys, output: str, problem: str
) -> None:
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\necho '{output}'\n")
    fake.chmod(0o755)
    code = main(["check", "--lock", str(tmp_path / "x.lock"), "--python", str(fake)])
    err = capsys.readouterr().err
    assert code == EXIT_UNUSABLE
    assert problem in err and "Traceback" not in err


@pytest.mark.skipif(os.name == "nt", reason="a shell script stands in for an interpreter")
def test_python_that_leaves_out_its_own_site_packages_is_refused(tmp_path: Path, capsys) -> None:
    """A venv interpreter whose standard library lies about its path is not believed."""
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    honest = subprocess.run(
        [str(root / "bin/python"), "-I", "-S", str(SCRIPT)],
        capture_output=True,
        text=True,
        check=True,
    )
    document = json.loads(honest.stdout)
    site_dirs = document["site_dirs"]
    document["path"] = [p for p in document["path"] if p not in site_dirs] + [str(tmp_path)]
    liar = root / "bin" / "liar"
    liar.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(document)}\nEOF\n")
    liar.chmod(0o755)
    code = main(["check", "--lock", str(tmp_path / "x.lock"), "--python", str(liar)])
    err = capsys.readouterr().err
    assert code == EXIT_UNUSABLE
    assert PYTHON_HIDES_SITE.split("{")[0] in err and site_dirs[0] in err


_TOKENS = ["a", "b", " ", "#", "import", "\t", "\n", "\r", "\x0c", "\x85", "\ufeff", "..", "/"]


class _Sink:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=14).map("".join))
def test_pth_path_lines_are_the_ones_this_pythons_site_adds(text: str) -> None:
    """This interpreter's own ``site.addpackage`` (exec recorded, not run) is the oracle."""
    import site
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for name in ("a", "b", "a b", "b a"):
            (Path(folder) / name).mkdir()
        (Path(folder) / "p.pth").write_bytes(text.encode("utf-8"))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "path", [])
            patch.setattr(sys, "stderr", _Sink())
            patch.setattr(site, "exec", lambda *_: None, raising=False)
            site.addpackage(folder, "p.pth", set())
            real = list(sys.path)
        path: list[str] = []
        extra: list[str] = []
        _add_site_dir(folder, path, set(), extra)
    assert path[0] == folder
    assert path[1:] == [entry for entry in real if entry != folder]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
_DESCRIPTION = st.fixed_dictionaries(
    {key: _JSON for key in pytest_mlsupply.sitepath.KEYS},
    optional={"extra": _JSON},
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), _JSON.map(json.dumps), _DESCRIPTION.map(json.dumps)))
def test_any_interpreter_output_parses_or_is_one_clear_error(text: str) -> None:
    try:
        found = parse_description("py", text)
    except MlsupplyError as exc:
        assert str(exc).startswith("--python py: ")
    else:
        assert all(isinstance(entry, str) for entry in found["path"])
        assert all(isinstance(value, str) for value in found["markers"].values())


def test_import_hooks_do_not_choose_the_rerun_path(tmp_path: Path, monkeypatch) -> None:
    """A meta-path finder a .pth line installed cannot point the re-run at its own tomli_w."""
    import importlib.machinery

    from pytest_mlsupply.cli import own_import_path

    decoy = tmp_path / "decoy"

    class Hook:
        @staticmethod
        def find_spec(name: str, path: object = None, target: object = None) -> object:
            if name == "tomli_w":
                origin = str(decoy / "tomli_w" / "__init__.py")
                spec = importlib.machinery.ModuleSpec(name, None, origin=origin, is_package=True)
                spec.submodule_search_locations = [str(decoy / "tomli_w")]
                return spec
            return None

    monkeypatch.setattr(sys, "meta_path", [Hook(), *sys.meta_path])
    monkeypatch.delitem(sys.modules, "tomli_w", raising=False)  # else find_spec asks no finder
    folders = own_import_path()
    assert not [folder for folder in folders if folder.startswith(str(decoy))]
    assert any((Path(folder) / "tomli_w").is_dir() for folder in folders)


def test_empty_segments_and_empty_variables_read_as_python_reads_them(tmp_path: Path) -> None:
    """An empty PYTHONPATH segment is the current directory; an empty PYTHONNOUSERSITE
    is no setting at all (CPython ignores empty variables)."""
    extra = tmp_path / "extra"
    extra.mkdir()
    env = {"PYTHONPATH": os.pathsep + str(extra), "PYTHONNOUSERSITE": ""}
    static = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=_clean_env(**env),
    )
    assert json.loads(static.stdout)["path"] == real_path(sys.executable, tmp_path, **env)

"""Modules found on the import path before an installed distribution's own, over real trees."""

from __future__ import annotations

import importlib.machinery
import json
import os
import sys
import tempfile
import types
import zipfile
import zipimport
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_mlsupply.findings import Kind, Severity
from pytest_mlsupply.shadowing import (
    LOADER_SUFFIXES,
    MESSAGE_LOADED_ELSEWHERE,
    MESSAGE_SHADOWED,
    Provider,
    _fnmatch_ex,
    _PathView,
    _test_files,
    build_index,
    check_loaded_modules,
    find_shadowing,
    find_startup_modules,
    importlib_tops,
    index_from_dict,
    index_to_dict,
    prepend_roots,
    resolve,
)
from pytest_mlsupply.snapshot import take_snapshot
from pytest_mlsupply.verify import ownership_index

from wheelfactory import install_fake

EXTENSION = importlib.machinery.EXTENSION_SUFFIXES[0]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site-packages"
    install_fake(folder, "demo-model", "1.0", {"demo_model/__init__.py": "W = 1\n"})
    install_fake(folder, "helper", "2.0")  # helper.py
    return folder


def index_of(site: Path, rootdir: Path | None = None):
    snapshot = take_snapshot([str(site)], keep_rows=True)
    return build_index(snapshot, ownership_index(snapshot.distributions).dist_tops, rootdir=rootdir)


def shadows(site: Path, *ahead: str | Path, rootdir: Path | None = None, cwd: str | None = None):
    path = [str(p) for p in ahead] + [str(site)]
    return find_shadowing(index_of(site, rootdir), path, cwd=cwd)


def test_index_names_each_distributions_import_names(site: Path) -> None:
    index = index_of(site)
    assert sorted(index) == ["demo_model", "helper"]
    assert index["helper"][0].dist == "helper"
    assert index_from_dict(json.loads(json.dumps(index_to_dict(index)))) == dict(index)


def test_clean_path_has_no_findings(site: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "unrelated.py").write_text("")
    assert shadows(site, other) == []


def test_module_ahead_of_the_site_directory_is_an_error_naming_both(
    site: Path, tmp_path: Path
) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "helper.py").write_text("import os\n")
    [finding] = shadows(site, tests)
    assert (finding.kind, finding.severity, finding.subject) == (
        Kind.IMPORT_SHADOWED,
        Severity.ERROR,
        "helper",
    )
    assert str(tests / "helper.py") in finding.message
    assert os.path.realpath(site) in finding.message
    assert finding.message == MESSAGE_SHADOWED.format(
        module="helper",
        dist="helper",
        installed=os.path.realpath(site),
        found=tests / "helper.py",
        entry=tests,
    )
    assert finding.hint and "rename or remove" in finding.hint


@pytest.mark.parametrize(
    "layout",
    [
        {"demo_model/__init__.py": ""},
        {"demo_model.py": ""},
        {"demo_model.pyc": ""},
        {f"demo_model{EXTENSION}": ""},
        {"demo_model/__init__.pyc": ""},
    ],
    ids=["package", "module", "sourceless", "extension", "sourceless-package"],
)
def test_every_loader_suffix_shadows(site: Path, tmp_path: Path, layout: dict[str, str]) -> None:
    ahead = tmp_path / "ahead"
    for relative, text in layout.items():
        (ahead / relative).parent.mkdir(parents=True, exist_ok=True)
        (ahead / relative).write_text(text)
    [finding] = shadows(site, ahead)
    assert finding.subject == "demo-model"


def test_a_namespace_portion_does_not_shadow_a_later_package(site: Path, tmp_path: Path) -> None:
    ahead = tmp_path / "ahead"
    (ahead / "demo_model").mkdir(parents=True)  # no __init__.py: a namespace portion
    (ahead / "demo_model" / "notes.txt").write_text("")
    assert shadows(site, ahead) == []


def test_entries_after_the_site_directory_do_not_shadow(site: Path, tmp_path: Path) -> None:
    later = tmp_path / "later"
    later.mkdir()
    (later / "helper.py").write_text("")
    assert find_shadowing(index_of(site), [str(site), str(later)]) == []


def test_the_empty_entry_is_the_current_directory(site: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "helper.py").write_text("")
    [finding] = shadows(site, "", cwd=str(cwd))
    assert "the current directory" in finding.message


def test_a_symlink_to_the_site_directory_is_the_site_directory(site: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(site)
    assert shadows(site, link) == []


def test_a_zip_file_on_the_path_shadows(site: Path, tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("lib/helper.py", "X = 1\n")
        zf.writestr("demo_model/", "")  # a directory entry only: a namespace portion
    [finding] = shadows(site, archive / "lib", archive)
    assert finding.subject == "helper"
    assert f"{archive}{os.sep}lib/helper.py" in finding.message


def test_a_file_that_is_not_a_zip_is_skipped(site: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    assert shadows(site, junk) == []


def test_a_zip_zipfile_rejects_but_zipimport_loads_shadows(site: Path, tmp_path: Path) -> None:
    """A corrupt extra field: zipfile refuses the archive, zipimport never reads extras."""
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("helper.py")
        info.extra = b"\x99\x99\x10\x00"
        zf.writestr(info, "X = 1\n")
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(archive)
    assert zipimport.zipimporter(str(archive)).find_spec("helper") is not None
    [finding] = shadows(site, archive)
    assert finding.subject == "helper"
    assert finding.actual == f"{archive}{os.sep}helper.py"


def test_namespace_package_submodule_shadowed_by_an_earlier_portion(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    install_fake(site, "ns-part", "1.0", {"nspkg/part/__init__.py": ""})
    ahead = tmp_path / "ahead"
    (ahead / "nspkg").mkdir(parents=True)
    (ahead / "nspkg" / "part.py").write_text("")
    [finding] = shadows(site, ahead)
    assert "'nspkg.part'" in finding.message


def test_a_regular_module_shadows_a_namespace_package(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    install_fake(site, "ns-part", "1.0", {"nspkg/part/__init__.py": ""})
    ahead = tmp_path / "ahead"
    ahead.mkdir()
    (ahead / "nspkg.py").write_text("")
    [finding] = shadows(site, ahead)
    assert "'nspkg'" in finding.message


def test_an_editable_projects_own_names_are_not_flagged_but_others_are(tmp_path: Path) -> None:
    project = tmp_path / "project"
    src = project / "src"
    (src / "mylib").mkdir(parents=True)
    (src / "mylib" / "__init__.py").write_text("")
    site = tmp_path / "site-packages"
    install_fake(site, "helper", "2.0")
    dist_info = install_fake(
        site,
        "mylib",
        "0.1",
        {"__editable__.mylib-0.1.pth": f"{src}\n"},
        direct_url=json.dumps({"url": project.as_uri(), "dir_info": {"editable": True}}),
    )
    (dist_info / "top_level.txt").write_text("mylib\n")
    assert shadows(site, src) == []
    (src / "helper.py").write_text("")  # the project's tree may not provide another's name
    [finding] = shadows(site, src)
    assert finding.subject == "helper"


def test_the_rootdir_project_may_provide_its_own_names_from_src(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "src" / "mylib").mkdir(parents=True)
    (root / "src" / "mylib" / "__init__.py").write_text("")
    site = tmp_path / "site-packages"
    install_fake(site, "mylib", "0.1", {"mylib/__init__.py": ""})  # a non-editable install
    assert len(shadows(site, root / "src")) == 1  # no pyproject.toml: not known as the project
    (root / "pyproject.toml").write_text('[project]\nname = "MyLib"\n')
    assert shadows(site, root / "src", rootdir=root) == []
    (root / "pyproject.toml").write_text("[project\nname = ")  # unreadable: no exemption
    assert len(shadows(site, root / "src", rootdir=root)) == 1


# ------------------------------------------------------------------ pytest's insertions


def test_prepend_roots_follow_pytests_package_rule(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("")
    (tmp_path / "pkgtests" / "sub").mkdir(parents=True)
    (tmp_path / "pkgtests" / "__init__.py").write_text("")
    (tmp_path / "pkgtests" / "sub" / "__init__.py").write_text("")
    (tmp_path / "pkgtests" / "sub" / "b_test.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "conftest.py").write_text("")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "test_x.py").write_text("")
    (tmp_path / "venv2").mkdir()
    (tmp_path / "venv2" / "pyvenv.cfg").write_text("")
    (tmp_path / "venv2" / "test_v.py").write_text("")
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "util.py").write_text("")
    roots = prepend_roots(
        [tmp_path],
        python_files=["test_*.py", "*_test.py"],
        norecursedirs=["build", ".*"],
    )
    assert sorted(roots) == sorted([str(tmp_path / "tests"), str(tmp_path), str(tmp_path / "docs")])
    assert prepend_roots([tmp_path / "tests" / "test_a.py"], python_files=[], norecursedirs=[]) == [
        str(tmp_path / "tests")
    ]


# ------------------------------------------------------------------ the backstop


def module(name: str, filename: str | None) -> types.ModuleType:
    mod = types.ModuleType(name)
    if filename is not None:
        mod.__file__ = filename
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None, origin=filename)
        mod.__spec__.has_location = True
    return mod


def test_loaded_modules_from_their_installation_pass(site: Path) -> None:
    index = index_of(site)
    loaded = {
        "demo_model": module("demo_model", str(site / "demo_model" / "__init__.py")),
        "demo_model.sub": module("demo_model.sub", str(site / "demo_model" / "sub.py")),
        "helper": module("helper", str(site / "helper.py")),
        "helper.moves.json": module("helper.moves.json", json.__file__),  # an alias
        "demo_model.ns": module("demo_model.ns", None),
        "unrelated": module("unrelated", "/elsewhere/unrelated.py"),
    }
    assert check_loaded_modules(loaded, index) == []


def test_module_objects_with_a_relative_file_name_pass(site: Path) -> None:
    """torch puts module objects into sys.modules itself (``torch.ops`` has
    ``__file__ = "_ops.py"``): a relative name is no file the import system loaded."""

    class Namespace(types.ModuleType):
        __file__ = "_ops.py"

    loaded = {"demo_model.ops": Namespace("demo_model.ops")}
    assert check_loaded_modules(loaded, index_of(site)) == []


def test_a_module_loaded_from_elsewhere_is_an_error(site: Path, tmp_path: Path) -> None:
    index = index_of(site)
    fake = tmp_path / "tests" / "helper.py"
    loaded = {
        "helper": module("helper", str(fake)),
        # Next to the installed module is not its own: another top-level entry.
        "demo_model.x": module("demo_model.x", str(site / "elsewhere" / "x.py")),
    }
    found = check_loaded_modules(loaded, index)
    assert [f.subject for f in found] == ["demo-model", "helper"]
    assert found[1].message == MESSAGE_LOADED_ELSEWHERE.format(
        module="helper", dist="helper", installed=os.path.realpath(site), found=fake
    )
    assert all(f.kind is Kind.IMPORT_SHADOWED for f in found)


def test_a_module_that_rewrites_its_origin_is_still_caught(site: Path, tmp_path: Path) -> None:
    """``__spec__.origin`` and ``__file__`` claim the installed file; the loader knows better."""
    index = index_of(site)
    fake = tmp_path / "tests" / "helper.py"
    mod = module("helper", str(site / "helper.py"))
    mod.__spec__.loader = importlib.machinery.SourceFileLoader("helper", str(fake))
    mod.__loader__ = mod.__spec__.loader
    [finding] = check_loaded_modules({"helper": mod}, index)
    assert finding.actual == str(fake)


def test_provider_round_trip() -> None:
    provider = Provider("x", "/a", ("/b",))
    assert Provider.from_list(provider.to_list()) == provider


# ------------------------------------------------------------------ the real import system

NAMES = ("alpha", "beta")
SHAPES = st.sampled_from(
    ["package", "namespace", "module", "sourceless", "extension", "file-no-suffix", "none"]
)
ENTRY = st.fixed_dictionaries({name: SHAPES for name in NAMES})


def _lay_out(folder: Path, shapes: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, shape in shapes.items():
        if shape == "package":
            (folder / name).mkdir()
            (folder / name / "__init__.py").write_text("")
        elif shape == "namespace":
            (folder / name).mkdir()
        elif shape == "module":
            (folder / f"{name}.py").write_text("")
        elif shape == "sourceless":
            (folder / f"{name}.pyc").write_bytes(b"")
        elif shape == "extension":
            (folder / f"{name}{EXTENSION}").write_bytes(b"")
        elif shape == "file-no-suffix":
            (folder / name).write_text("")


@settings(max_examples=60, deadline=None)
@given(st.lists(ENTRY, min_size=1, max_size=4), st.lists(st.booleans(), min_size=4, max_size=4))
def test_resolution_agrees_with_importlib_pathfinder(
    entries: list[dict[str, str]], zipped: list[bool]
) -> None:
    """Whatever the tree, we find what ``PathFinder.find_spec`` finds, namespace portions too."""
    with tempfile.TemporaryDirectory() as raw:
        base = Path(raw)
        path: list[str] = []
        for i, shapes in enumerate(entries):
            folder = base / f"e{i}"
            _lay_out(folder, shapes)
            if zipped[i] and "extension" not in shapes.values():
                archive = base / f"e{i}.zip"
                with zipfile.ZipFile(archive, "w") as zf:
                    for file in sorted(folder.rglob("*")):
                        arcname = file.relative_to(folder).as_posix()
                        zf.writestr(arcname + "/" if file.is_dir() else arcname, b"")
                path.append(str(archive))
            else:
                path.append(str(folder))
        view = _PathView(str(base))
        try:
            for name in NAMES:
                spec = importlib.machinery.PathFinder.find_spec(name, path)
                hit, portions = resolve(name, path, view)
                if spec is None:
                    assert hit is None and not portions
                elif spec.loader is None:  # a namespace package
                    assert hit is None
                    assert list(spec.submodule_search_locations or ()) == portions
                elif isinstance(spec.loader, zipimport.zipimporter):
                    # zipimport's specs have no origin; the archive and kind must agree.
                    loader = spec.loader
                    assert hit is not None, spec
                    assert hit.entry == os.path.join(loader.archive, loader.prefix).rstrip(os.sep)
                    assert ("/__init__." in hit.origin) == loader.is_package(name)
                else:
                    assert hit is not None and hit.origin == spec.origin, (spec, hit)
        finally:
            for entry in path:
                sys.path_importer_cache.pop(entry, None)


def test_loader_suffixes_follow_filefinder_order() -> None:
    finder = importlib.machinery.FileFinder(
        ".", *importlib._bootstrap_external._get_supported_file_loaders()
    )  # type: ignore[attr-defined]
    assert tuple(suffix for suffix, _ in finder._loaders) == LOADER_SUFFIXES  # type: ignore[attr-defined]


def test_prepend_roots_include_conftest_files_above_the_paths(tmp_path: Path) -> None:
    """pytest loads conftest.py from each path's parents, up to the confcutdir."""
    (tmp_path / "root" / "tests").mkdir(parents=True)
    (tmp_path / "conftest.py").write_text("")  # above the confcutdir: never loaded
    (tmp_path / "root" / "conftest.py").write_text("")
    (tmp_path / "root" / "tests" / "test_a.py").write_text("")
    roots = prepend_roots(
        [tmp_path / "root" / "tests"],
        python_files=["test_*.py"],
        norecursedirs=[],
        confcutdir=tmp_path / "root",
    )
    assert sorted(roots) == [str(tmp_path / "root"), str(tmp_path / "root" / "tests")]


def test_prepend_roots_include_the_conftest_of_every_test_folder(tmp_path: Path) -> None:
    """pytest loads ``<arg>/test*/conftest.py`` even in norecursedirs folders and venvs."""
    for name in ("test.egg", "testvenv", "tests_old"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "conftest.py").write_text("")
    (tmp_path / "testvenv" / "pyvenv.cfg").write_text("")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "conftest.py").write_text("")
    roots = prepend_roots(
        [tmp_path], python_files=["test_*.py"], norecursedirs=["*.egg", "other", "tests_old"]
    )
    assert sorted(roots) == sorted(
        str(tmp_path / name) for name in ("test.egg", "testvenv", "tests_old")
    )


def test_prepend_roots_with_doctest_modules_count_every_python_file(tmp_path: Path) -> None:
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "util.py").write_text("")
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "__main__.py").write_text("")  # doctest collection skips it
    plain = prepend_roots([tmp_path], python_files=["test_*.py"], norecursedirs=[])
    assert plain == []
    roots = prepend_roots(
        [tmp_path], python_files=["test_*.py"], norecursedirs=[], doctest_modules=True
    )
    assert roots == [str(tmp_path / "helpers")]


def test_importlib_tops_follow_pytests_module_names(tmp_path: Path) -> None:
    (tmp_path / "demo" / "sub").mkdir(parents=True)
    (tmp_path / "demo" / "__init__.py").write_text("")
    (tmp_path / "demo" / "sub" / "__init__.py").write_text("")
    (tmp_path / "tests.d").mkdir()
    files = [
        tmp_path / "demo" / "sub" / "test_a.py",
        tmp_path / "tests.d" / "test_b.py",
        tmp_path / "test_c.py",
    ]
    assert importlib_tops(files, tmp_path) == [
        ("demo", str(tmp_path)),
        ("tests_d", str(tmp_path)),
        ("test_c", str(tmp_path)),
    ]


def test_a_pinned_name_outside_its_distribution_shadows(site: Path, tmp_path: Path) -> None:
    (tmp_path / "helper").mkdir()  # a namespace folder counts: pytest imports it as helper
    index = index_of(site)
    [finding] = find_shadowing(index, [str(site)], pinned=[("helper", str(tmp_path))])
    assert finding.actual == str(tmp_path / "helper")
    assert find_shadowing(index, [str(site)], pinned=[("helper", str(site))]) == []


def _walked(top: Path, python_files: list[str], norecursedirs: list[str]) -> set[Path]:
    """The files ``os.walk`` finds (the walk the explicit stack replaced), for comparison."""
    found = set()
    for folder, dirs, files in os.walk(top):
        dirs[:] = [
            d
            for d in dirs
            if not any(_fnmatch_ex(p, os.path.join(folder, d)) for p in norecursedirs)
            and not os.path.isfile(os.path.join(folder, d, "pyvenv.cfg"))
        ]
        for name in files:
            full = os.path.join(folder, name)
            if name.endswith(".py") and (
                name == "conftest.py" or any(_fnmatch_ex(p, full) for p in python_files)
            ):
                found.add(Path(full))
    return found


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from(["a", "b", "build", "test_x.py", "conftest.py", "m.py"]),
            min_size=1,
            max_size=4,
        ),
        max_size=12,
    )
)
def test_the_stack_walk_finds_what_os_walk_finds(shapes: list[list[str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        for parts in shapes:
            *folders, last = parts
            folder = top.joinpath(*folders)
            if any(p.is_file() for p in (folder, *folder.parents) if top in p.parents):
                continue  # a file where a folder would go
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / last
            if last.endswith(".py"):
                if not target.exists():
                    target.write_text("")
            elif not target.is_file():
                target.mkdir(exist_ok=True)
        args = (["test_*.py"], ["build"])
        assert set(_test_files(top, *args)) == _walked(top, *args)


def test_prepend_roots_follow_symlinked_folders_once(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "test_a.py").write_text("")
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "linked").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "top")  # a cycle ends, never recurses
    roots = prepend_roots([tmp_path / "top"], python_files=["test_*.py"], norecursedirs=[])
    assert str(tmp_path / "top" / "linked") in roots


def test_backstop_aliases_and_stray_files_in_a_site_directory(tmp_path: Path) -> None:
    """An alias to another package's single-file module passes; a stray file in the same
    site directory does not, even when that site directory lies inside the standard library's
    folder (as it does outside a venv)."""
    site = tmp_path / "site-packages"
    install_fake(site, "demo-model", "1.0", {"demo_model/__init__.py": ""})
    install_fake(site, "helper", "2.0")
    index = index_of(site)
    loaded = {
        "demo_model.helper_alias": module("demo_model.helper_alias", str(site / "helper.py")),
        "demo_model.stray": module("demo_model.stray", str(site / "stray" / "x.py")),
    }
    found = check_loaded_modules(loaded, index)
    assert [f.actual for f in found] == [str(site / "stray" / "x.py")]


def test_prepend_roots_match_patterns_with_a_folder_as_pytest_does(tmp_path: Path) -> None:
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "verify_x.py").write_text("")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "verify_y.py").write_text("")
    roots = prepend_roots([tmp_path], python_files=["checks/verify_*.py"], norecursedirs=[])
    assert roots == [str(tmp_path / "checks")]


def test_a_name_another_distribution_also_owns_is_never_exempt(tmp_path: Path) -> None:
    """The project's tree may not provide a name a second distribution ships too."""
    root = tmp_path / "root"
    (root / "src" / "common").mkdir(parents=True)
    (root / "src" / "common" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text('[project]\nname = "mylib"\n')
    site = tmp_path / "site-packages"
    install_fake(site, "mylib", "0.1", {"common/__init__.py": "", "mylib/__init__.py": ""})
    install_fake(site, "sloppy", "1.0", {"common/__init__.py": ""})
    [finding] = shadows(site, root / "src", rootdir=root)
    assert "'common'" in finding.message and "mylib, sloppy" in finding.message


def test_startup_modules_off_the_site_directories_need_an_owner(tmp_path: Path) -> None:
    site_dir, elsewhere, later = tmp_path / "site", tmp_path / "elsewhere", tmp_path / "later"
    for folder in (site_dir, elsewhere, later):
        folder.mkdir()
    (site_dir / "sitecustomize.py").write_text("")  # judged by the file verification
    (later / "sitecustomize.py").write_text("")  # hidden by the first one: never imported
    (elsewhere / "usercustomize.py").write_text("")
    path = [str(site_dir), str(elsewhere), str(later)]

    found = find_startup_modules(path, owned_files=[], checked_dirs=[str(site_dir)])
    assert [(f.kind, f.subject, f.location) for f in found] == [
        (Kind.UNOWNED_STARTUP_CODE, "usercustomize", str(elsewhere / "usercustomize.py"))
    ]
    # A file a hashed RECORD row vouches for is fine wherever it is.
    owned = [str(elsewhere / "usercustomize.py")]
    assert find_startup_modules(path, owned_files=owned, checked_dirs=[str(site_dir)]) == []
    # Off the site directories, the first sitecustomize on the path is the one site imports.
    found = find_startup_modules(path[1:][::-1], owned_files=[], checked_dirs=[])
    assert {f.subject for f in found} == {"sitecustomize", "usercustomize"}

"""A local install's RECORD vouches only for its own names (issue 11, red-team finding).

The lock never pins an editable or directory install's files, so rows added to
its RECORD must not make start-up code, pytest plugins or files in another
distribution's folder look owned. Fake site directories, read through the real
``importlib.metadata``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pytest_mlsupply.findings import Finding, Kind, Severity
from pytest_mlsupply.local_installs import (
    FINDER_UNKNOWN,
    LOCAL_FINDER,
    LOCAL_INTRUDER,
    LOCAL_PLUGIN,
    LOCAL_PTH_CODE,
    LOCAL_PTH_PATH,
    LOCAL_STARTUP_MODULE,
    find_local_overreach,
)
from pytest_mlsupply.snapshot import take_snapshot
from pytest_mlsupply.verify import ownership_index

from wheelfactory import install_fake

FINDER = "__editable___myproj_0_1_finder"


def editable(tree: Path) -> str:
    return json.dumps({"url": tree.as_uri(), "dir_info": {"editable": True}})


def check(site: Path) -> list[Finding]:
    snapshot = take_snapshot([str(site)], keep_rows=True)
    return find_local_overreach(snapshot, ownership_index(snapshot.distributions))


def add_row(dist_info: Path, site: Path, relative: str) -> None:
    """What the attacker does: append a correctly hashed row to the RECORD."""
    data = (site / relative).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    with (dist_info / "RECORD").open("a") as record:
        record.write(f"{relative},sha256={digest},{len(data)}\n")


def finder_text(tree: Path) -> str:
    """What setuptools writes for a flat-layout editable install (its own template)."""
    # Importing setuptools appends its _vendor folder to sys.path (vendored dist-infos that
    # in-process pytester runs in this worker would then snapshot): keep the path as it was.
    saved = list(sys.path)
    try:
        editable_wheel = pytest.importorskip("setuptools.command.editable_wheel")
    finally:
        sys.path[:] = saved
    template = getattr(editable_wheel, "_finder_template", None)
    if template is None:
        pytest.skip("this setuptools has no finder template (before 64)")
    text: str = template("__editable__.myproj-0.1.finder", {"myproj": str(tree / "myproj")}, {})
    return text


def setuptools_editable(site: Path, tree: Path) -> Path:
    (tree / "src" / "myproj").mkdir(parents=True, exist_ok=True)
    (tree / "src" / "myproj" / "__init__.py").write_text("X = 1\n")
    return install_fake(
        site,
        "myproj",
        "0.1",
        {
            "__editable__.myproj-0.1.pth": f"import {FINDER}; {FINDER}.install()",
            f"{FINDER}.py": finder_text(tree),
        },
        direct_url=editable(tree),
    )


def replace_file(dist_info: Path, site: Path, relative: str, text: str) -> None:
    """Rewrite a listed file and its RECORD row, as an attacker would."""
    (site / relative).write_text(text)
    rows = (dist_info / "RECORD").read_text().splitlines()
    kept = [row for row in rows if not row.startswith(f"{relative},")]
    (dist_info / "RECORD").write_text("\n".join(kept) + "\n")
    add_row(dist_info, site, relative)


def test_clean_setuptools_finder_editable_has_no_finding(tmp_path: Path) -> None:
    setuptools_editable(tmp_path / "site", tmp_path / "proj")
    assert check(tmp_path / "site") == []


def test_clean_path_only_editables_have_no_finding(tmp_path: Path) -> None:
    """setuptools (src layout), hatchling, flit, pdm-backend, poetry-core, uv_build."""
    site = tmp_path / "site"
    tree = tmp_path / "proj"
    (tree / "src").mkdir(parents=True)
    for name, pth in [
        ("a", "__editable__.a-0.1.pth"),
        ("b", "_b.pth"),
        ("c", "c.pth"),
    ]:
        install_fake(site, name, "0.1", {pth: f"{tree / 'src'}\n"}, direct_url=editable(tree))
    assert check(site) == []


def test_directory_install_of_own_package_has_no_finding(tmp_path: Path) -> None:
    site = tmp_path / "site"
    direct = json.dumps({"url": (tmp_path / "proj").as_uri(), "dir_info": {}})
    install_fake(site, "myproj", "0.1", {"myproj/__init__.py": "\n"}, direct_url=direct)
    assert check(site) == []


def test_added_import_pth_is_an_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist_info = setuptools_editable(site, tmp_path / "proj")
    (site / "zz_evil.pth").write_text('import os; open("/nonexistent/x","w")\n')
    add_row(dist_info, site, "zz_evil.pth")
    [finding] = check(site)
    assert finding.kind is Kind.UNOWNED_STARTUP_CODE and finding.severity is Severity.ERROR
    assert finding.message == LOCAL_PTH_CODE.format(
        path=site / "zz_evil.pth", owner="myproj", line='import os; open("/nonexistent/x","w")'
    )
    assert finding.location == str(site / "zz_evil.pth")


def test_setuptools_pth_with_an_extra_or_altered_line_is_an_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist_info = setuptools_editable(site, tmp_path / "proj")
    pth = site / "__editable__.myproj-0.1.pth"
    for text in [
        f"import {FINDER}; {FINDER}.install()\nimport os\n",
        f"import {FINDER}; {FINDER}.install(); import os",
        "import __editable___other_1_finder; __editable___other_1_finder.install()",
    ]:
        pth.write_text(text)
        rows = (dist_info / "RECORD").read_text().splitlines()
        kept = [row for row in rows if not row.startswith("__editable__.")]
        (dist_info / "RECORD").write_text("\n".join(kept) + "\n")
        add_row(dist_info, site, pth.name)
        [finding] = check(site)
        assert finding.kind is Kind.UNOWNED_STARTUP_CODE, text


def test_finder_pth_without_its_finder_listed_is_an_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    tree = tmp_path / "proj"
    install_fake(
        site,
        "myproj",
        "0.1",
        {"__editable__.myproj-0.1.pth": f"import {FINDER}; {FINDER}.install()"},
        direct_url=editable(tree),
    )
    [finding] = check(site)
    assert finding.kind is Kind.UNOWNED_STARTUP_CODE


def test_path_pth_outside_the_tree_is_an_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist_info = setuptools_editable(site, tmp_path / "proj")
    (tmp_path / "elsewhere").mkdir()
    (site / "zz_path.pth").write_text(f"{tmp_path / 'proj'}\n{tmp_path / 'elsewhere'}\n")
    add_row(dist_info, site, "zz_path.pth")
    [finding] = check(site)
    assert finding.kind is Kind.UNOWNED_STARTUP_CODE
    assert LOCAL_PTH_PATH.split("{folder}")[1].split("{owner}")[0] in finding.message
    assert str(tmp_path / "elsewhere") in finding.message


def test_path_pth_of_a_local_install_without_a_tree_is_an_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    direct = json.dumps({"url": "https://example.invalid/x", "dir_info": {"editable": True}})
    install_fake(site, "myproj", "0.1", {"myproj.pth": f"{tmp_path}\n"}, direct_url=direct)
    [finding] = check(site)
    assert finding.kind is Kind.UNOWNED_STARTUP_CODE


def test_listed_sitecustomize_is_an_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist_info = setuptools_editable(site, tmp_path / "proj")
    for relative in ["sitecustomize.py", "usercustomize/__init__.py"]:
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text("import os\n")
        add_row(dist_info, site, relative)
    found = check(site)
    assert [f.kind for f in found] == [Kind.UNOWNED_STARTUP_CODE] * 2
    tail = LOCAL_STARTUP_MODULE.split("{owner}")[1]
    assert all(f.message.endswith(tail) for f in found)


def test_pytest11_entry_outside_own_names_is_an_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist_info = setuptools_editable(site, tmp_path / "proj")
    (dist_info / "entry_points.txt").write_text(
        "[pytest11]\nown = myproj.plugin\nevilplug = myproj_evil\n"
    )
    (site / "myproj_evil.py").write_text("import os\n")
    add_row(dist_info, site, f"{dist_info.name}/entry_points.txt")
    add_row(dist_info, site, "myproj_evil.py")
    [finding] = check(site)
    assert finding.kind is Kind.UNOWNED_STARTUP_CODE and finding.severity is Severity.ERROR
    assert "`evilplug = myproj_evil`" in finding.message
    assert LOCAL_PLUGIN.split("{names}")[1] in finding.message


def test_pytest11_entry_under_a_package_of_the_tree_passes(tmp_path: Path) -> None:
    """A distribution named unlike its package: the tree's ``src/`` gives the name."""
    site = tmp_path / "site"
    tree = tmp_path / "proj"
    (tree / "src" / "other_name").mkdir(parents=True)
    dist_info = install_fake(
        site, "myproj", "0.1", {"myproj.pth": f"{tree / 'src'}\n"}, direct_url=editable(tree)
    )
    (dist_info / "entry_points.txt").write_text("[pytest11]\nx = other_name.plugin:hooks\n")
    add_row(dist_info, site, f"{dist_info.name}/entry_points.txt")
    assert check(site) == []


def test_file_in_another_distributions_folder_is_an_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(site, "demo", "1.0", {"demo/__init__.py": "\n", "demo/core.py": "X = 1\n"})
    dist_info = setuptools_editable(site, tmp_path / "proj")
    (site / "demo" / "core").mkdir()
    (site / "demo" / "core" / "__init__.py").write_text("import os\n")
    add_row(dist_info, site, "demo/core/__init__.py")
    (site / "demo-1.0.dist-info" / "entry_points.txt").write_text("[pytest11]\nx = demo\n")
    add_row(dist_info, site, "demo-1.0.dist-info/entry_points.txt")
    found = check(site)
    assert [(f.kind, f.severity) for f in found] == [(Kind.UNOWNED_MODULE, Severity.ERROR)] * 2
    assert found[0].message == LOCAL_INTRUDER.format(
        path=site / "demo" / "core" / "__init__.py", other="demo", owner="myproj"
    )


def test_namespace_siblings_and_shared_files_pass(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake(site, "ns-other", "1.0", {"ns/other/__init__.py": "\n", "shared.txt": "s\n"})
    direct = json.dumps({"url": (tmp_path / "proj").as_uri(), "dir_info": {}})
    install_fake(site, "ns-mine", "1.0", {"ns/mine/__init__.py": "\n"}, direct_url=direct)
    assert check(site) == []


def test_an_index_install_is_not_judged_here(tmp_path: Path) -> None:
    """Its content is pinned by the lock; file verification and intruders cover it."""
    site = tmp_path / "site"
    install_fake(site, "tool", "1.0", {"tool.pth": "import os\n", "sitecustomize.py": "\n"})
    assert check(site) == []


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=120))
@example(text="\x00")
@example(text="\ufeffimport os")
def test_any_pth_text_passes_only_as_path_lines_into_the_tree(text: str) -> None:
    with tempfile.TemporaryDirectory() as temp:
        _judge_any_pth(Path(temp), text)


def _judge_any_pth(tmp_path: Path, text: str) -> None:
    site = tmp_path / "site"
    tree = tmp_path / "proj"
    tree.mkdir(parents=True, exist_ok=True)
    dist_info = install_fake(site, "myproj", "0.1", {}, direct_url=editable(tree))
    (site / "zz.pth").write_bytes(text.encode("utf-8", "surrogatepass"))
    rows = (dist_info / "RECORD").read_text().splitlines()
    (dist_info / "RECORD").write_text("\n".join(r for r in rows if "zz.pth" not in r) + "\n")
    add_row(dist_info, site, "zz.pth")
    found = check(site)
    if not any(line.strip() and not line.startswith("#") for line in text.splitlines()):
        assert found == []
    assert all(f.severity is Severity.ERROR for f in found)


def test_a_row_spelled_through_the_parent_folder_is_judged_where_it_lands(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    install_fake(site, "demo", "1.0", {"demo/__init__.py": "\n", "demo/core.py": "X = 1\n"})
    dist_info = setuptools_editable(site, tmp_path / "proj")
    (site / "demo" / "core").mkdir()
    (site / "demo" / "core" / "__init__.py").write_text("import os\n")
    (site / "zz.pth").write_text("import os\n")
    add_row(dist_info, site, "demo/core/__init__.py")
    add_row(dist_info, site, "zz.pth")
    record = dist_info / "RECORD"
    record.write_text(
        record.read_text()
        .replace("\ndemo/core/", "\n../site/demo/core/")
        .replace("\nzz.pth", "\n../site/./zz.pth")
    )
    found = check(site)
    assert sorted(f.kind for f in found) == [Kind.UNOWNED_MODULE, Kind.UNOWNED_STARTUP_CODE]
    assert all(f.severity is Severity.ERROR for f in found)


def test_the_installed_setuptools_finder_template_is_known(tmp_path: Path) -> None:
    """Fails when a setuptools release changes its finder: add its digest."""
    setuptools_editable(tmp_path / "site", tmp_path / "proj")
    assert check(tmp_path / "site") == []


def test_a_tampered_setuptools_finder_is_an_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    tree = tmp_path / "proj"
    dist_info = setuptools_editable(site, tree)
    clean = (site / f"{FINDER}.py").read_text()
    elsewhere = str(tmp_path / "elsewhere" / "myproj")
    cases = {
        clean + "\nimport os\n": FINDER_UNKNOWN,
        clean.replace(str(tree / "myproj"), elsewhere): "outside the working tree",
        clean.replace("= {'myproj'", "= __import__('os') or {'myproj'", 1): "literals",
        clean.replace("myproj-0.1.finder", "other-0.1.finder"): "PATH_PLACEHOLDER",
    }
    for text, why in cases.items():
        replace_file(dist_info, site, f"{FINDER}.py", text)
        [finding] = check(site)
        assert finding.kind is Kind.UNOWNED_STARTUP_CODE and finding.severity is Severity.ERROR
        assert why in finding.message, (why, finding.message)
        assert finding.location == str(site / f"{FINDER}.py")
    assert LOCAL_FINDER.split("{owner}")[0].split("{path}")[1] in finding.message


def test_file_in_the_folder_of_a_distribution_without_record_is_an_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    legacy = install_fake(site, "legacy", "1.0", {"legacy/__init__.py": "\n"}, record=False)
    (legacy / "top_level.txt").write_text("legacy\n")
    dist_info = setuptools_editable(site, tmp_path / "proj")
    (site / "legacy" / "evil.py").write_text("import os\n")
    add_row(dist_info, site, "legacy/evil.py")
    [finding] = check(site)
    assert (finding.kind, finding.severity) == (Kind.UNOWNED_MODULE, Severity.ERROR)

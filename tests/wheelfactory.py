"""Real wheels and real virtual environments for tests, built offline.

``build_wheel`` writes a spec-conforming wheel (a zip with METADATA, WHEEL and
a RECORD of sha256 hashes and sizes). ``repack_installed`` turns an installed
distribution of the test environment back into a wheel from its RECORD, so a
throwaway venv can get pytest and its dependencies without any network.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
    return f"sha256={digest}"


def _wheel_name(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def write_wheel(
    dest_dir: Path,
    name: str,
    version: str,
    files: Mapping[str, bytes],
    metadata_files: Mapping[str, bytes],
    tag: str = "py3-none-any",
) -> Path:
    """Zip *files* plus a ``.dist-info`` holding *metadata_files* and a fresh RECORD."""
    dist_info = f"{_wheel_name(name)}-{version}.dist-info"
    entries = dict(files)
    for filename, data in metadata_files.items():
        entries[f"{dist_info}/{filename}"] = data
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for path, data in entries.items():
        writer.writerow([path, _record_hash(data), len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    entries[f"{dist_info}/RECORD"] = out.getvalue().encode()
    wheel_path = dest_dir / f"{_wheel_name(name)}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in entries.items():
            archive.writestr(path, data)
    return wheel_path


def build_wheel(
    dest_dir: Path,
    name: str,
    version: str,
    files: Mapping[str, str | bytes] | None = None,
    *,
    requires: Sequence[str] = (),
    entry_points: str | None = None,
) -> Path:
    """A small pure-Python wheel; *files* default to one module named after the package."""
    module = _wheel_name(name)
    chosen = files if files is not None else {f"{module}.py": f"VERSION = {version!r}\n"}
    encoded = {p: d.encode() if isinstance(d, str) else d for p, d in chosen.items()}
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {req}" for req in requires]
    meta: dict[str, bytes] = {
        "METADATA": ("\n".join(lines) + "\n").encode(),
        "WHEEL": b"Wheel-Version: 1.0\nGenerator: wheelfactory\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    if entry_points:
        meta["entry_points.txt"] = entry_points.encode()
    dest_dir.mkdir(parents=True, exist_ok=True)
    return write_wheel(dest_dir, name, version, encoded, meta)


_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def repack_installed(name: str, dest_dir: Path) -> Path:
    """Rebuild a wheel of installed distribution *name* from the files its RECORD lists."""
    dist = metadata.distribution(name)
    dist_path = Path(str(dist._path))  # type: ignore[attr-defined]
    files: dict[str, bytes] = {}
    meta: dict[str, bytes] = {}
    for entry in dist.files or ():
        posix = entry.as_posix()
        if posix.startswith("..") or "__pycache__" in posix or posix.endswith(".pyc"):
            continue
        data = Path(str(dist.locate_file(entry))).read_bytes()
        if posix.startswith(f"{dist_path.name}/"):
            filename = posix[len(dist_path.name) + 1 :]
            if filename not in _INSTALLER_FILES:
                meta[filename] = data
        else:
            files[posix] = data
    tags = [
        line.split(":", 1)[1].strip()
        for line in meta.get("WHEEL", b"").decode().splitlines()
        if line.startswith("Tag:")
    ]
    tag = _compressed_tag(tags) if tags else "py3-none-any"
    dest_dir.mkdir(parents=True, exist_ok=True)
    return write_wheel(dest_dir, dist.metadata["Name"], dist.version, files, meta, tag)


def _compressed_tag(tags: list[str]) -> str:
    """``py2-none-any`` + ``py3-none-any`` -> ``py2.py3-none-any`` (the file-name form)."""
    parts = [tag.split("-") for tag in tags]
    return "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))


def pip(python: Path, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """Run the test environment's pip against the venv whose interpreter is *python*.

    ``--no-index`` keeps every install offline: wheels come from local paths only.
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "--disable-pip-version-check",
        "--no-input",
        *map(str, args),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"pip failed: {command}\n{result.stdout}\n{result.stderr}")
    return result


def create_venv(path: Path) -> Path:
    """A venv without pip (the test environment's pip installs into it); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return venv_python(path)


def venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def copy_venv(source: Path, dest: Path) -> Path:
    """Copy a venv; interpreters run from any location since ``python -m`` is used throughout."""
    shutil.copytree(source, dest, symlinks=True)
    return venv_python(dest)


def site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def install_fake(
    site: Path,
    name: str,
    version: str,
    files: Mapping[str, str] | None = None,
    *,
    installer: str | None = "pip",
    direct_url: str | None = None,
    record: bool = True,
    extra_record_rows: Sequence[tuple[str, str, str]] = (),
    metadata_text: str | None = None,
) -> Path:
    """Lay out an installed distribution in *site* as an installer would; returns its dist-info.

    Used with the real ``importlib.metadata`` (no monkeypatching): tests point the
    snapshot's search path at *site*.
    """
    module = _wheel_name(name)
    chosen = files if files is not None else {f"{module}.py": f"VERSION = {version!r}\n"}
    dist_info = site / f"{module}-{version}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str]] = []
    for relative, text in chosen.items():
        target = site / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode()
        target.write_bytes(data)
        rows.append((relative, _record_hash(data), str(len(data))))
    meta = {
        "METADATA": metadata_text
        if metadata_text is not None
        else f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if installer is not None:
        meta["INSTALLER"] = f"{installer}\n"
    if direct_url is not None:
        meta["direct_url.json"] = direct_url
    for filename, text in meta.items():
        data = text.encode()
        (dist_info / filename).write_bytes(data)
        rows.append((f"{dist_info.name}/{filename}", _record_hash(data), str(len(data))))
    rows.extend(extra_record_rows)
    if record:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerows(rows)
        writer.writerow([f"{dist_info.name}/RECORD", "", ""])
        (dist_info / "RECORD").write_text(out.getvalue())
    return dist_info

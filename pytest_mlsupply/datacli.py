"""The data commands of ``python -m pytest_mlsupply``: ``data add`` and ``hash``.

``hash`` prints ``alg:hex  path`` lines like ``sha256sum`` (for every file under a directory,
sorted), so a manifest or registry can be written by hand; ``data add`` records one dataset in
the data manifest. Exit codes as the rest of the CLI: 0 done, 2 unusable input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DATA_COMMANDS = ("data", "hash")
EXIT_OK = 0
EXIT_UNUSABLE = 2
MSG_ADDED = "mlsupply: recorded dataset {name!r} ({kind}, {files}) in {manifest}"


def add_commands(commands: Any) -> None:
    """Add the ``data`` and ``hash`` sub-commands to the CLI's sub-parsers."""
    from pytest_mlsupply.datasets import DEFAULT_MANIFEST_NAME
    from pytest_mlsupply.hashing import DEFAULT_ALGORITHM

    data = commands.add_parser("data", help="record datasets in the data manifest")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")
    actions.required = True
    add = actions.add_parser("add", help="add or refresh one dataset (a file or a directory)")
    add.add_argument("name", metavar="NAME", help="the name tests use in verified_data(...)")
    add.add_argument("path", metavar="PATH", help="the file or directory holding the data")
    add.add_argument(
        "--manifest",
        metavar="PATH",
        default=DEFAULT_MANIFEST_NAME,
        help=f"the data manifest (default: {DEFAULT_MANIFEST_NAME} in the current directory)",
    )
    add.add_argument(
        "--algorithm",
        default=DEFAULT_ALGORITHM,
        help=f"hash algorithm, any hashlib name (default: {DEFAULT_ALGORITHM})",
    )
    hash_parser = commands.add_parser(
        "hash", help="print 'alg:hex  path' for files and every file under directories"
    )
    hash_parser.add_argument("paths", metavar="PATH", nargs="+")
    hash_parser.add_argument(
        "--algorithm",
        default=DEFAULT_ALGORITHM,
        help=f"hash algorithm, any hashlib name (default: {DEFAULT_ALGORITHM})",
    )


def run(args: argparse.Namespace) -> int:
    from pytest_mlsupply.errors import MlsupplyError

    try:
        if args.command == "hash":
            return _hash(args.paths, args.algorithm.lower())
        return _add(args.name, Path(args.path), Path(args.manifest), args.algorithm.lower())
    except (MlsupplyError, OSError) as exc:
        print(f"mlsupply: error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE


def _add(name: str, data_path: Path, manifest: Path, algorithm: str) -> int:
    from pytest_mlsupply.datasets import add_to_manifest

    entry = add_to_manifest(manifest.resolve(), name, data_path.resolve(), algorithm=algorithm)
    count = 1 if entry.files is None else len(entry.files)
    files = f"{count} file" if count == 1 else f"{count} files"
    print(MSG_ADDED.format(name=name, kind=entry.kind, files=files, manifest=manifest))
    return EXIT_OK


def _hash(paths: list[str], algorithm: str) -> int:
    import os

    from pytest_mlsupply.datasets import _check_algorithm, hash_tree, scan_tree
    from pytest_mlsupply.errors import FileProblemsError

    _check_algorithm(algorithm)
    status = EXIT_OK
    for given in paths:
        root = Path(given)
        if root.is_dir():
            scan = scan_tree(root)
            if scan.problems:
                raise FileProblemsError(given, scan.problems)
            names = sorted(scan.files)
            digests = hash_tree(root, names, algorithm)
            for name in names:
                print(f"{digests[name]}  {os.path.join(given, *name.split('/'))}")
        elif root.exists():
            digest = hash_tree(root.parent, [root.name], algorithm)[root.name]
            print(f"{digest}  {given}")
        else:
            print(f"mlsupply: error: {given}: no such file or directory", file=sys.stderr)
            status = EXIT_UNUSABLE
    return status

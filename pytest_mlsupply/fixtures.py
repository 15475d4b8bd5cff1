"""The ``verified_data`` marker and fixture: tests that run only on data whose digests match.

Registered on every run (``plugin.pytest_configure``), with or without ``--mlsupply``: the
marker is a promise the test makes about its inputs, not part of the environment gate. So this
module imports only the standard library and pytest at import time; the manifest, hashing and
TOML code load on the first marked test.

Each dataset is verified once per session, on first use, and its verdict kept in the stash; a
verdict is also cached under pytest's cache directory, keyed on the manifest entry and every
file's stat, so a warm re-run and xdist workers do not hash again. A bad dataset makes the
tests that asked for it error at setup, naming the file and both digests; other tests run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_mlsupply.datasets import DatasetVerdict, Manifest
    from pytest_mlsupply.knownbad import KnownBadIndex

MARKER_LINE = (
    "verified_data(*names): run the test only on the datasets NAMES of the data manifest "
    "(mlsupply-data.toml) whose digests match; the verified_data fixture maps name -> Path."
)
MISSING_DATA_CHOICES = ("fail", "skip")
MSG_FIXTURE_WITHOUT_MARKER = (
    "the verified_data fixture needs @pytest.mark.verified_data('NAME', ...) on the test "
    "(or its class or module) to know which datasets to verify"
)
MSG_MARKER_ARGS = "@pytest.mark.verified_data takes dataset names as strings, got {value!r}"
MSG_BAD_MISSING_DATA = "{source}: expected one of {choices}, got {value!r}"
MSG_UPDATED = "mlsupply: refreshed {count} datasets in {path}"
MSG_SUMMARY = "mlsupply: verified data: {listing}"
CACHE_SUBDIR = "mlsupply-data"
#: Where the compiled known-bad index lives: the gate's cache folder, so both share it.
KNOWN_BAD_CACHE_SUBDIR = "mlsupply"
MSG_KNOWN_BAD = "dataset {name!r} ({path}) matches {manifest}, but holds files known to be bad:"
MSG_KNOWN_BAD_FILE = "known bad: {file}: digest {digest} ({ids}): {summary}"
MSG_FEED_PROBLEM = "mlsupply: known-bad feed for verified data: {problem}"
WORKEROUTPUT_KEY = "mlsupply_data_verdicts"


class WeakDigestWarning(UserWarning):
    """A dataset is verified with md5 or sha1, whose collisions can be manufactured."""


class KnownBadFeedWarning(UserWarning):
    """A known-bad feed could not be used for verified data; the other feeds still apply."""


@dataclass
class DataState:
    """Per-session state, in the stash: the manifest once read, and each dataset's verdict."""

    manifest_path: Path
    missing: str
    update: bool
    cache_dir: Path | None
    manifest: Manifest | None = None
    manifest_error: str | None = None
    verdicts: dict[str, DatasetVerdict] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)
    updated: int | None = None
    worker_summaries: list[list[Any]] = field(default_factory=list)
    #: The known-bad feeds that apply to verified files too (issue: "Known-bad packages and
    #: hashes"); None when there are none.
    known_bad_paths: tuple[Path, ...] = ()
    builtin_known_bad: bool = False
    known_bad_index: KnownBadIndex | None = None
    feed_problems: list[str] = field(default_factory=list)


_state_key = pytest.StashKey[DataState]()


class VerifiedData(Mapping[str, Path]):
    """Dataset name -> verified ``Path``; ``verdicts`` says how each was verified."""

    def __init__(self, verdicts: Mapping[str, DatasetVerdict]) -> None:
        self.verdicts = dict(verdicts)

    def __getitem__(self, name: str) -> Path:
        return self.verdicts[name].path

    def __iter__(self) -> Iterator[str]:
        return iter(self.verdicts)

    def __len__(self) -> int:
        return len(self.verdicts)

    def __repr__(self) -> str:
        return f"VerifiedData({ {n: str(p) for n, p in self.items()} })"


def _missing_choice(config: pytest.Config) -> str:
    value = config.getoption("mlsupply_missing_data")
    source = "--mlsupply-missing-data"
    if value is None:
        value = str(config.getini("mlsupply_missing_data") or "").strip() or "fail"
        source = f"ini option 'mlsupply_missing_data' in {config.inipath or 'the ini file'}"
    if value not in MISSING_DATA_CHOICES:
        raise pytest.UsageError(
            "mlsupply: "
            + MSG_BAD_MISSING_DATA.format(
                source=source, choices=" or ".join(MISSING_DATA_CHOICES), value=value
            )
        )
    return str(value)


def _manifest_path(config: pytest.Config) -> Path:
    from pytest_mlsupply.settings import DEFAULT_DATA_MANIFEST_NAME

    value = config.getoption("mlsupply_data")
    if value:
        return (config.invocation_params.dir / str(value)).resolve()
    raw = str(config.getini("mlsupply_data") or "").strip()
    if raw:
        base = config.inipath.parent if config.inipath else config.rootpath
        return (base / raw).resolve()
    return config.rootpath / DEFAULT_DATA_MANIFEST_NAME


def _cache_dir(config: pytest.Config) -> Path | None:
    """Verdicts go to pytest's cache; none with ``-p no:cacheprovider`` (then every run hashes)."""
    cache = getattr(config, "cache", None)
    if cache is None:
        return None
    try:
        return Path(cache.mkdir(CACHE_SUBDIR))
    except OSError:
        return None


def configure(
    config: pytest.Config,
    *,
    known_bad_paths: tuple[Path, ...] = (),
    builtin_known_bad: bool = False,
) -> None:
    """Called from ``plugin.pytest_configure``: validate options, register this module."""
    state = DataState(
        manifest_path=_manifest_path(config),
        missing=_missing_choice(config),
        update=bool(config.getoption("mlsupply_update_data")),
        cache_dir=None,
        known_bad_paths=known_bad_paths,
        builtin_known_bad=builtin_known_bad,
    )
    config.stash[_state_key] = state
    import sys

    config.pluginmanager.register(sys.modules[__name__], "mlsupply-data")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    state = config.stash[_state_key]
    # --mlsupply-rehash distrusts every cache, the data verdicts included.
    state.cache_dir = None if config.getoption("mlsupply_rehash") else _cache_dir(config)
    if not state.update or _is_worker(config):
        return
    from pytest_mlsupply.datasets import load_manifest, refresh_entry, write_manifest
    from pytest_mlsupply.errors import MlsupplyError

    try:
        manifest = load_manifest(state.manifest_path, config.rootpath)
        refreshed = {
            name: refresh_entry(entry, manifest.directory, config.rootpath)
            for name, entry in manifest.datasets.items()
        }
        write_manifest(manifest.path, refreshed)
    except (MlsupplyError, OSError) as exc:
        raise pytest.UsageError(f"mlsupply: --mlsupply-update-data: {exc}") from None
    state.updated = len(refreshed)


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(_state_key, None)
    if state is None or state.updated is None:
        return []
    return [MSG_UPDATED.format(count=state.updated, path=state.manifest_path)]


def marker_names(item: pytest.Item) -> list[str]:
    """Dataset names of every ``verified_data`` marker on *item* (function, class, module)."""
    names: list[str] = []
    for marker in item.iter_markers("verified_data"):
        if not marker.args or marker.kwargs:
            pytest.fail(MSG_MARKER_ARGS.format(value=marker.kwargs or "nothing"), pytrace=False)
        for value in marker.args:
            if not isinstance(value, str) or not value:
                pytest.fail(MSG_MARKER_ARGS.format(value=value), pytrace=False)
            if value not in names:
                names.append(value)
    return names


def _verdict(config: pytest.Config, state: DataState, name: str) -> DatasetVerdict:
    """The dataset's verdict, computed on first use; ``MlsupplyError`` for unusable input."""
    from pytest_mlsupply.datasets import load_manifest, verify_dataset
    from pytest_mlsupply.errors import MlsupplyError

    if name in state.verdicts:
        return state.verdicts[name]
    if name in state.errors:
        raise MlsupplyError(state.errors[name])
    if state.manifest_error is not None:
        raise MlsupplyError(state.manifest_error)
    try:
        if state.manifest is None:
            try:
                state.manifest = load_manifest(state.manifest_path, config.rootpath)
            except MlsupplyError as exc:
                state.manifest_error = str(exc)
                raise
        verdict = verify_dataset(state.manifest, name, cache_dir=state.cache_dir)
        if verdict.ok:
            _refuse_known_bad(config, state, verdict)
    except MlsupplyError as exc:
        state.errors.setdefault(name, str(exc))
        raise
    state.verdicts[name] = verdict
    return verdict


def _known_bad_index(config: pytest.Config, state: DataState) -> KnownBadIndex | None:
    """The known-bad index, loaded once per session (from the gate's compiled cache if fresh)."""
    if not state.known_bad_paths and not state.builtin_known_bad:
        return None
    if state.known_bad_index is None:
        from pytest_mlsupply.knownbad import load_feeds

        cache = getattr(config, "cache", None)
        cache_dir = None
        if cache is not None and not config.getoption("mlsupply_rehash"):
            try:
                cache_dir = Path(cache.mkdir(KNOWN_BAD_CACHE_SUBDIR))
            except OSError:
                cache_dir = None
        loaded = load_feeds(
            state.known_bad_paths,
            builtin=state.builtin_known_bad,
            base=config.rootpath,
            cache_dir=cache_dir,
        )
        state.known_bad_index = loaded.index
        state.feed_problems = [
            MSG_FEED_PROBLEM.format(problem=p.describe()) for p in loaded.problems
        ]
    return state.known_bad_index


def _refuse_known_bad(config: pytest.Config, state: DataState, verdict: DatasetVerdict) -> None:
    """Verified bytes can still be bad bytes: a file a known-bad feed lists fails the dataset."""
    index = _known_bad_index(config, state)
    if index is None or not index.digest_keys():
        return
    from pytest_mlsupply.datasets import verified_digests
    from pytest_mlsupply.errors import MlsupplyError
    from pytest_mlsupply.knownbad.match import describe_advisories

    listed = []
    for path, digest in verified_digests(verdict):
        advisories = index.match_digest(digest)
        if advisories:
            ids, summary = describe_advisories(advisories)
            listed.append(
                MSG_KNOWN_BAD_FILE.format(file=path, digest=digest, ids=ids, summary=summary)
            )
    if listed:
        head = MSG_KNOWN_BAD.format(name=verdict.name, path=verdict.path, manifest=verdict.manifest)
        raise MlsupplyError("\n".join([head, *(f"  {line}" for line in listed)]))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Verify the item's datasets before any fixture runs; fail or skip its setup if bad."""
    names = marker_names(item)
    if not names:
        return
    from pytest_mlsupply.datasets import MSG_WEAK
    from pytest_mlsupply.errors import MlsupplyError

    state = item.config.stash[_state_key]
    failures: list[str] = []
    missing: list[str] = []
    for name in names:
        try:
            verdict = _verdict(item.config, state, name)
        except MlsupplyError as exc:
            failures.append(f"mlsupply: {exc}")
            continue
        if verdict.status == "missing":
            missing.append(verdict.message())
        elif not verdict.ok:
            failures.append(verdict.message())
        elif verdict.weak and name not in state.warned:
            state.warned.add(name)
            algorithms = " and ".join(verdict.weak)
            item.warn(WeakDigestWarning(MSG_WEAK.format(name=name, algorithms=algorithms)))
    for problem in state.feed_problems:
        item.warn(KnownBadFeedWarning(problem))
    state.feed_problems.clear()
    if missing and state.missing == "fail":
        failures.extend(missing)
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)
    if missing:
        pytest.skip("\n".join(missing))


@pytest.fixture
def verified_data(request: pytest.FixtureRequest) -> VerifiedData:
    """Name -> Path of each dataset the test's ``verified_data`` marker names, all verified."""
    node = request.node
    names = marker_names(node) if isinstance(node, pytest.Item) else []
    if not names:
        pytest.fail(MSG_FIXTURE_WITHOUT_MARKER, pytrace=False)
    state = request.config.stash[_state_key]
    # pytest_runtest_setup verified them all (or the test would not be here).
    return VerifiedData({name: state.verdicts[name] for name in names})


def _summaries(state: DataState) -> list[list[Any]]:
    """``[name, status, source, files_hashed, weak algorithms]`` per verdict: plain data, for
    xdist's channel."""
    return [
        [name, verdict.status, verdict.source, verdict.files_hashed, list(verdict.weak)]
        for name, verdict in sorted(state.verdicts.items())
    ]


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = config.stash.get(_state_key, None)
    if state is not None and _is_worker(config):
        workeroutput: dict[str, Any] = getattr(config, "workeroutput")  # noqa: B009
        workeroutput[WORKEROUTPUT_KEY] = _summaries(state)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: collect what each worker verified, for the summary line."""
    output = getattr(node, "workeroutput", None) or {}
    state = node.config.stash.get(_state_key, None)
    if state is not None:
        state.worker_summaries.extend(output.get(WORKEROUTPUT_KEY, []))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_state_key, None)
    if state is None or _is_worker(config) or config.get_verbosity() < 0:
        return
    merged: dict[str, tuple[str, list[str]]] = {}
    weak: dict[str, set[str]] = {}
    for name, status, source, count, *rest in [*_summaries(state), *state.worker_summaries]:
        how = {
            "hashed": f"hashed {count} file" + ("" if count == 1 else "s"),
            "cache": "unchanged since verified",
            "peer": "verified by another worker",
        }.get(source, str(source))
        worst, hows = merged.setdefault(name, (status, []))
        merged[name] = (worst if worst != "ok" else status, [*hows, how])
        weak.setdefault(name, set()).update(rest[0] if rest else ())
    if not merged:
        return
    parts = []
    for name, (status, hows) in sorted(merged.items()):
        if weak[name]:
            hows = [*hows, " and ".join(sorted(weak[name])) + ": weak hash"]
        parts.append(f"{name} ({status}, {'; '.join(hows)})")
    terminalreporter.line(MSG_SUMMARY.format(listing=", ".join(parts)))

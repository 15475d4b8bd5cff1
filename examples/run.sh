#!/usr/bin/env bash
# The pytest-mlsupply example, end to end, in one command:
#
#     bash examples/run.sh            (PYTHON=python3.12 bash examples/run.sh to pick Python)
#
# It builds a throwaway virtualenv, installs this project and the tinyml
# example's pinned requirements, locks that environment, shows a clean gated
# test run, then changes one installed package underneath the tests and shows
# that `pytest --mlsupply` refuses to run the suite until it is restored, and
# last changes one byte of the training data and shows that the tests marked
# as needing that dataset do not run on it.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
EXAMPLE_DIR="$SCRIPT_DIR/tinyml"
VENV_DIR="$REPO_ROOT/.venv-example"
PYTHON="${PYTHON:-python3}"
# The package we change underneath the tests: a small dependency of pytest.
DRIFT_PACKAGE="iniconfig"

export PIP_DISABLE_PIP_VERSION_CHECK=1
# The lock should describe the virtualenv only, not whatever PYTHONPATH adds.
unset PYTHONPATH

current_step="start"
finished=""
LOG_FILE="$(mktemp)"

on_exit() {
    local status=$?
    rm -f "$LOG_FILE"
    if [ "$status" -ne 0 ] && [ -z "$finished" ]; then
        printf '\nSUMMARY: FAILED at step %s (exit %d); see the output above.\n' \
            "$current_step" "$status" >&2
    fi
}
trap on_exit EXIT

step() {
    current_step="$1"
    printf '\n==> Step %s: %s\n' "$1" "$2"
}

say() { printf '    %s\n' "$*"; }

fail() {
    finished="yes"
    printf '\nSUMMARY: FAILED at step %s: %s\n' "$current_step" "$*" >&2
    exit 1
}

# Runs the virtualenv's python in the example directory, showing the command as a user
# with the virtualenv activated would type it.
in_example() {
    printf '    (in examples/tinyml) $ python %s\n' "$*"
    (cd "$EXAMPLE_DIR" && "$VENV_PY" "$@")
}

installed_version() {
    "$VENV_PY" -c 'import sys; from importlib.metadata import version; print(version(sys.argv[1]))' "$1"
}

# ---------------------------------------------------------------------------
step "1/7" "Create a throwaway virtualenv at .venv-example/ (PYTHON=$PYTHON)"
command -v "$PYTHON" >/dev/null 2>&1 || fail "interpreter '$PYTHON' not found; set PYTHON=/path/to/python3"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || fail "pytest-mlsupply needs Python 3.10 or newer; '$PYTHON' is older"
"$PYTHON" -m venv --clear "$VENV_DIR"
if [ -x "$VENV_DIR/bin/python" ]; then
    VENV_PY="$VENV_DIR/bin/python"
else
    VENV_PY="$VENV_DIR/Scripts/python.exe"
fi
say "$("$VENV_PY" -c 'import platform, sys; print(f"Python {platform.python_version()} at {sys.prefix}")')"
say "(below, \"python\" and \"pip\" are this virtualenv's)"

# ---------------------------------------------------------------------------
step "2/7" "Install pytest-mlsupply (from this checkout) and the example's requirements"
say "\$ pip install <repo root> -r examples/tinyml/requirements.txt"
"$VENV_PY" -m pip install --quiet "$REPO_ROOT" -r "$EXAMPLE_DIR/requirements.txt"
say "installed: pytest-mlsupply $(installed_version pytest-mlsupply), pytest $(installed_version pytest)," \
    "numpy $(installed_version numpy), $DRIFT_PACKAGE $(installed_version "$DRIFT_PACKAGE")"

# ---------------------------------------------------------------------------
step "3/7" "Lock this environment: write examples/tinyml/mlsupply.lock, then run the tests"
in_example -m pytest --mlsupply-update-lock \
    || fail "the tests failed while writing the lock"
[ -f "$EXAMPLE_DIR/mlsupply.lock" ] || fail "no mlsupply.lock was written"
LOCKED_VERSION="$(installed_version "$DRIFT_PACKAGE")"
say "locked $DRIFT_PACKAGE $LOCKED_VERSION (and everything else installed) in examples/tinyml/mlsupply.lock"

# ---------------------------------------------------------------------------
step "4/7" "Gated run: the environment matches the lock, so the suite runs and passes"
in_example -m pytest --mlsupply \
    || fail "pytest --mlsupply failed right after locking; expected a clean pass"
LOCK_FACTS="$("$VENV_PY" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["distributions_checked"], "distributions in", r["environment"])' \
    "$EXAMPLE_DIR/mlsupply-report.json")"
say "clean gated run passed ($LOCK_FACTS)"

# ---------------------------------------------------------------------------
# Any version but the locked one shows the drift; both satisfy pytest's own requirement.
if [ "$LOCKED_VERSION" = "2.0.0" ]; then DRIFT_VERSION="2.1.0"; else DRIFT_VERSION="2.0.0"; fi
step "5/7" "Drift: install $DRIFT_PACKAGE $DRIFT_VERSION over the locked $LOCKED_VERSION; the gate must fail"
say "\$ pip install '$DRIFT_PACKAGE==$DRIFT_VERSION'"
"$VENV_PY" -m pip install --quiet "$DRIFT_PACKAGE==$DRIFT_VERSION"
drift_status=0
in_example -m pytest --mlsupply 2>&1 | tee "$LOG_FILE" || drift_status=$?
[ "$drift_status" -eq 1 ] \
    || fail "pytest --mlsupply exited $drift_status after the drift; expected 1 (gate failed)"
grep -q "version-changed.*$DRIFT_PACKAGE" "$LOG_FILE" \
    || fail "pytest --mlsupply failed, but its output does not name a version-changed $DRIFT_PACKAGE"
"$VENV_PY" - "$EXAMPLE_DIR/mlsupply-report.json" "$DRIFT_PACKAGE" <<'PY' \
    || fail "the JSON report does not record the $DRIFT_PACKAGE version change"
import json
import sys

report = json.load(open(sys.argv[1]))
changed = [
    f for f in report["findings"] if f["kind"] == "version-changed" and f["subject"] == sys.argv[2]
]
sys.exit(0 if report["result"] == "failed" and changed else 1)
PY
say "As expected: the gate failed with exit 1 and a version-changed finding for $DRIFT_PACKAGE"
say "(locked $LOCKED_VERSION, installed $DRIFT_VERSION); the model tests were not run."
say "The same check outside pytest, as a CI step might run it:"
cli_status=0
in_example -m pytest_mlsupply check || cli_status=$?
[ "$cli_status" -eq 1 ] || fail "python -m pytest_mlsupply check exited $cli_status; expected 1"
say "As expected: the command-line check exited 1 too."

# ---------------------------------------------------------------------------
step "6/7" "Restore: reinstall the locked $DRIFT_PACKAGE $LOCKED_VERSION; the gate passes again"
say "\$ pip install '$DRIFT_PACKAGE==$LOCKED_VERSION'"
"$VENV_PY" -m pip install --quiet "$DRIFT_PACKAGE==$LOCKED_VERSION"
in_example -m pytest --mlsupply \
    || fail "pytest --mlsupply still fails after restoring $DRIFT_PACKAGE $LOCKED_VERSION"
say "restored: the environment matches the lock again and the suite passed"

# ---------------------------------------------------------------------------
step "7/7" "Data: change one byte of data/flowers.csv; the tests marked verified_data(\"flowers\") must not run on it"
DATA_FILE="$EXAMPLE_DIR/data/flowers.csv"
DATA_BACKUP="$(mktemp)"
cp "$DATA_FILE" "$DATA_BACKUP"
restore_data() { cp "$DATA_BACKUP" "$DATA_FILE"; rm -f "$DATA_BACKUP"; }
# A measurement nudged by one digit: the kind of edit no schema check notices.
"$VENV_PY" - "$DATA_FILE" <<'PY'
import sys

path = sys.argv[1]
data = bytearray(open(path, "rb").read())
line_end = data.index(b"\n") + 1  # first byte after the header: a digit of a measurement
data[line_end] = ord("9") if data[line_end] != ord("9") else ord("8")
open(path, "wb").write(bytes(data))
PY
say "changed one digit in the first row of examples/tinyml/data/flowers.csv"
data_status=0
in_example -m pytest --mlsupply 2>&1 | tee "$LOG_FILE" || data_status=$?
restore_data
[ "$data_status" -eq 1 ] \
    || fail "pytest --mlsupply exited $data_status on changed data; expected 1"
grep -q "dataset 'flowers'" "$LOG_FILE" && grep -q "changed: .*flowers.csv: expected sha256:" "$LOG_FILE" \
    || fail "the run failed, but its output does not name the changed file and its digests"
say "As expected: every test marked verified_data(\"flowers\") errored at setup, naming the file,"
say "the expected and the actual digest; the environment gate itself passed."
in_example -m pytest --mlsupply -q \
    || fail "the suite still fails after restoring data/flowers.csv"
say "restored the file: the suite passes again"

finished="yes"
printf '\nSUMMARY: OK in %ss: locked %s; clean run passed; %s %s -> %s failed the gate (exit 1, version-changed); restored %s passed; one changed byte of the dataset stopped the tests that use it.\n' \
    "$SECONDS" "$LOCK_FACTS" "$DRIFT_PACKAGE" "$LOCKED_VERSION" "$DRIFT_VERSION" "$LOCKED_VERSION"

# Sourced by the CI scripts. make_venv DIR PIP-ARGS...: a fresh venv of $PYTHON in DIR, with the
# newest pip, and PIP-ARGS installed.
make_venv() {
    local dir="$1"
    shift
    # Chained, so that a failure also stops it where set -e does not apply (in an `if`).
    rm -rf "$dir" \
        && "$PYTHON" -m venv "$dir" \
        && "$dir/bin/python" -m pip install -q --upgrade pip \
        && "$dir/bin/python" -m pip install -q "$@"
}

#!/usr/bin/env bash
# Create the virtual environment and install ctranscnn (editable, with dev extras) on first use.
# Idempotent and fast when already set up: a stamp holds the hash of pyproject.toml; when it is stale
# but every requirement is already satisfied (e.g. a pre-built .venv), no network is needed.
#   VENV=path  (default .venv)   PYTHON=python3.x (interpreter used to create the venv)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
stamp="$VENV/.ctranscnn-setup"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)

[[ -f $stamp && $(cat "$stamp") == "$want" ]] && exit 0

if [[ ! -x $VENV/bin/python ]]; then
    echo "setup_env: creating $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
fi

satisfied() {
    # -I: isolated, so the checkout's own folders (ctranscnn.egg-info) do not stand in for the installed package.
    "$VENV/bin/python" -I scripts/env_check.py "$PWD" 2>"$VENV/.ctranscnn-unmet"
}

if ! satisfied; then
    echo "setup_env: installing ctranscnn[dev] into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    satisfied || { echo "setup_env: requirements still unsatisfied after pip install: $(cat "$VENV/.ctranscnn-unmet")" >&2; exit 1; }
fi
echo "$want" > "$stamp"

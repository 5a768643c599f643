#!/usr/bin/env bash
# rare_gan's one entry point. Sets itself up on first use (creates .venv with the pinned
# requirements and rare_gan in editable mode unless a suitable environment is active), then:
#
#   ./run_all.sh [--profile quick|full] [--data DIR] [--target CODE] [--resume]   regenerate every result
#   ./run_all.sh --tests [pytest args]                                           unit tests + notebooks (nbval)
#   ./run_all.sh --lab                                                           open the notebooks in JupyterLab
#
# See README.md. Set RARE_GAN_PYTHON to pick the interpreter used to create .venv (default: python3.11 or python3).
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '\033[1m[run_all]\033[0m %s\n' "$*" >&2; }

ensure_env() {
    local stamp
    stamp=$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
    # An activated venv/conda env that already has everything is used as it is.
    if [ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ] && [ "${VIRTUAL_ENV:-}" != "$PWD/.venv" ] &&
        python -c "import rare_gan, tensorflow, keras, wfdb, neurokit2, papermill, nbval" >/dev/null 2>&1; then
        PY=$(command -v python)
        return
    fi
    if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.rare_gan_stamp 2>/dev/null)" != "$stamp" ]; then
        local base="${RARE_GAN_PYTHON:-$(command -v python3.11 || command -v python3)}"
        if ! "$base" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            log "rare_gan needs Python 3.11; $base is $("$base" --version 2>&1). Set RARE_GAN_PYTHON=/path/to/python3.11."
            exit 2
        fi
        log "setting up .venv with $("$base" --version) (pinned requirements.txt; one-off, a few minutes)"
        rm -f .venv/.rare_gan_stamp
        "$base" -m venv .venv
        .venv/bin/python -m pip install -qq --disable-pip-version-check -r requirements.txt
        .venv/bin/python -m pip install -qq --disable-pip-version-check --no-deps --no-build-isolation -e .
        echo "$stamp" >.venv/.rare_gan_stamp
        log ".venv ready"
    fi
    PY="$PWD/.venv/bin/python"
}

ensure_env
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}" PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::DeprecationWarning}"

case "${1:-}" in
--tests)
    shift
    exec "$PY" -m rare_gan.testing "$@"
    ;;
--lab)
    shift
    exec "$PY" -m jupyter lab notebooks "$@"
    ;;
*)
    exec "$PY" -m rare_gan.pipeline "$@"
    ;;
esac

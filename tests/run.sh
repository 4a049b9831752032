#!/bin/sh
# Install everything the tests need, then run them (the README's test command;
# CI runs exactly this through .ci/run). Arguments go to pytest.
set -eu
cd "$(dirname "$0")/.."
# chromium: browser tests; mosquitto: MQTT tests; iproute2: network namespaces;
# systemd: systemd-analyze for the unit tests; fonts-noto-cjk: Chinese glyphs, so
# the browser layout tests measure real text rather than fallback boxes.
DEBIAN_PACKAGES="python3-venv python3-pip chromium fonts-noto-cjk mosquitto iproute2 systemd strace"
PIP_EXTRAS="[test]"
. edge/bootstrap-venv.sh

# mDNS tests run on loopback, which needs multicast enabled.
ip link set lo multicast on 2>/dev/null || echo "warning: could not enable multicast on lo; mDNS tests may skip"

.venv/bin/ruff check .
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"

#!/bin/sh
# Run the demo hub on a fresh Debian 12 machine (as root): installs what it
# needs into ./.venv, then `classroom-hub demo` in the foreground. Extra
# arguments go to the demo command, e.g. --port 8080 --data-dir /srv/demo.
set -eu
cd "$(dirname "$0")/../.."
DEBIAN_PACKAGES="python3-venv python3-pip"
. edge/bootstrap-venv.sh
exec .venv/bin/classroom-hub demo --speech "$@"

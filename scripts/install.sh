#!/usr/bin/env bash
# Set up mixeff on a Debian/Ubuntu machine (as root): system libraries, a virtual
# environment in .venv, and the package (editable) with the extras given as arguments,
# e.g. `bash scripts/install.sh test`.
#
# scikit-sparse 0.4.x builds against SuiteSparse 5 (Debian 12, Ubuntu 22.04) and 0.5.x
# needs SuiteSparse 7 (Debian 13, Ubuntu 24.04): the version is chosen from the
# libsuitesparse-dev that apt installed. mixeff's adapter (src/mixeff/_cholmod.py) works
# with both.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3-venv python3-dev build-essential \
    libsuitesparse-dev libopenblas0-pthread
ss_version=$(dpkg-query -W -f='${Version}' libsuitesparse-dev)
case "$ss_version" in
    1:[0-6].*|[0-6].*) sksparse="scikit-sparse>=0.4.12,<0.5" ;;
    *) sksparse="scikit-sparse>=0.5" ;;
esac
echo "SuiteSparse $ss_version: installing $sksparse"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras=""
if [ "$#" -gt 0 ]; then extras="[$(IFS=,; echo "$*")]"; fi
.venv/bin/python -m pip install -q "$sksparse" -e ".$extras"

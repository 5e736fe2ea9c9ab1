#!/usr/bin/env bash
# Wheels that scripts/gpu_check.sh installs (pip --no-index --no-deps) on a GPU machine that
# fetches nothing and has no pydantic, PyYAML or scikit-learn (the step benchmark trains on its
# digits): those and their small dependencies, for CPython 3.12 (the GPU machine) and this
# interpreter (a rehearsal), Linux x86_64, into wheels/ (about 17 MB per Python version; git
# ignores the folder). numpy and scipy are not fetched: the machine has them.
#
#     scripts/gpu_wheels.sh [PYTHON_VERSION ...]     # default: 3.12 and this python's
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.12 "$here")
for v in $(printf '%s\n' "${versions[@]}" | sort -u); do
    python -m pip download -q --only-binary=:all: --implementation cp --python-version "$v" \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 --no-deps -d wheels $(cat scripts/gpu_wheels.txt)
done
ls -1 wheels

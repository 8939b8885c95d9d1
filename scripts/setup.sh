#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh Debian machine: system packages for the Qt/VTK window
# on a virtual screen, a virtual environment in .venv, and the project with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v Xvfb >/dev/null || need_apt+=(xvfb xauth)
command -v dcm2niix >/dev/null || need_apt+=(dcm2niix)  # the independent DICOM converter the tests compare with
for lib in libxcb-icccm.so.4 libxcb-keysyms.so.1 libGL.so.1 libEGL.so.1 libxkbcommon-x11.so.0 libxcb-cursor.so.0; do
    ldconfig -p | grep -q "$lib" || { need_apt+=(libxcb-icccm4 libxcb-keysyms1 libgl1 libegl1 libgl1-mesa-dri \
        libglx-mesa0 libegl-mesa0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-image0 libxcb-render-util0 \
        libxcb-randr0 libxcb-shape0 libxcb-xkb1 libfontconfig1 libdbus-1-3 fonts-dejavu-core); break; }
done
if ((${#need_apt[@]})); then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.setup-stamp"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/pip install -q --upgrade pip
    # The CPU build of torch 2.13.0 lies on these machines' disk; installing it first keeps pip
    # from fetching a multi-GB CUDA build to satisfy the range in pyproject.toml.
    .venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q torch==2.13.0
    .venv/bin/pip install -q -e ".[test]"
    echo "$want" > "$stamp"
fi

#!/usr/bin/env bash
# Set up (if needed) and start the app. Without a display it runs on a virtual screen (Xvfb),
# which is only useful with --screenshot FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_API=pyside6
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    echo "no display found: running on a virtual screen (use --screenshot FILE to see the result)" >&2
    exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python main.py "$@"
fi
exec .venv/bin/python main.py "$@"

#!/usr/bin/env bash
# The demo (README): installs what is missing, builds, and runs `jetkit demo` on a local NATS that
# it starts itself. Pass demo options through, e.g. `bash scripts/demo.sh --cluster`.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$JETKIT_ROOT"
tsc -b
exec node cli/dist/src/main.js demo "$@"

#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, checks generated code and lint,
# builds, then runs every test suite against real nats-servers it starts itself.
#   scripts/test.sh            everything
#   scripts/test.sh PATTERN..  only TypeScript test files whose path contains PATTERN
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$JETKIT_ROOT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "generated code matches the contracts"
bash scripts/generate.sh --check

step "buf lint"
buf lint

step "build (tsc -b)"
tsc -b

step "biome (format + lint)"
biome check --error-on-warnings .

if [ -x scripts/test-polyglot.sh ] && [ $# -eq 0 ]; then
  step "Go and Rust"
  bash scripts/test-polyglot.sh
fi

step "TypeScript tests (node --test, real nats-server)"
files=()
while IFS= read -r f; do
  if [ $# -eq 0 ]; then files+=("$f"); else for p in "$@"; do [[ "$f" == *"$p"* ]] && files+=("$f"); done; fi
done < <(find */dist/test -name '*.test.js' -not -path '*/node_modules/*' | sort)
if [ ${#files[@]} -eq 0 ]; then echo "no test files matched" >&2; exit 1; fi
# tap on stdout (its closing '# pass N' / '# fail N' lines are the summary), readable spec on stderr.
node --test --test-concurrency="${JETKIT_TEST_CONCURRENCY:-1}" --test-timeout=300000 \
  --test-reporter=tap --test-reporter-destination=stdout \
  --test-reporter=spec --test-reporter-destination=stderr \
  "${files[@]}"

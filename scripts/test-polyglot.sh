#!/usr/bin/env bash
# Go and Rust halves of the polyglot kit: vet + test the generated Go module and the Go helper,
# build + test the generated Rust crate and the Rust helper (golden vectors of contracts/WIRE.md).
# Builds are cached per machine (GOCACHE default, CARGO_TARGET_DIR under JETKIT_TOOLS), so a
# warm run only re-links what changed. The live cross-language tests are in interop/ (TS suite).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$JETKIT_ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$JETKIT_TOOLS/cargo-target}"
# CI must build what the lock files pin, offline from the module cache when it is warm.
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

for mod in contracts/gen/go contracts/go interop/sdk-go; do
  echo "go vet + go test: $mod" >&2
  (cd "$mod" && go vet ./... && go test -count=1 ./...)
done
for crate in contracts/gen/rust contracts/rust; do
  echo "cargo test: $crate" >&2
  (cd "$crate" && cargo test --locked --quiet --all-targets)
done

#!/usr/bin/env bash
# Regenerates everything derived from the contracts: TypeScript (ts-proto), Go (protoc-gen-go),
# Rust (prost), the buf image the catalog loads, and the Rust crate's module tree.
#   scripts/generate.sh          regenerate in place
#   scripts/generate.sh --check  regenerate and fail if the committed output differs (CI)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$JETKIT_ROOT"

gen=contracts/gen
find "$gen/ts" "$gen/rust/src" -type f \( -name '*.ts' -o -name '*.rs' \) -delete 2>/dev/null || true
find "$gen/go" -type f -name '*.pb.go' -delete 2>/dev/null || true

buf generate
# The catalog's source of truth at runtime: the image of our own files (imports resolve to the
# copies that ship inside @bufbuild/protobuf and @bufbuild/protovalidate).
buf build --exclude-imports --as-file-descriptor-set -o "$gen/jetkit.binpb" contracts/proto

# ts-proto also emits code for imported files our code never uses (protovalidate's rules and
# the descriptor types they need); we do not ship those.
rm -rf "$gen/ts/buf"
for f in "$gen"/ts/google/protobuf/*.ts; do
  base="$(basename "$f" .ts)"
  if ! grep -rqs --include='*.ts' "google/protobuf/$base.js" "$gen/ts/jetkit" "$gen/ts/shop"; then rm -f "$f"; fi
done

# The Rust crate's module tree, one module per proto package (the same code as `jetkit contracts
# generate`; Node runs the TypeScript source directly, so this works before the first build).
node contracts/src/codegen/rust-lib.ts "$gen/rust/src" "../../jetkit.binpb" "Rust types of the jetkit contracts (prost)."

if [ "${1:-}" = "--check" ]; then
  if ! git diff --quiet -- "$gen" || [ -n "$(git status --porcelain --untracked-files=all -- "$gen")" ]; then
    git status --short -- "$gen" >&2
    echo "error[JK_GEN_STALE]: generated code under $gen is out of date with the contracts." >&2
    echo "  fix: run 'pnpm generate' and commit the result." >&2
    exit 1
  fi
  echo "generated code is in sync with the contracts" >&2
fi

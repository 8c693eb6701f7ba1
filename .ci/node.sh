#!/usr/bin/env bash
# Puts Node.js 20.19 or later, with npm, first on PATH: the OpenAPI tools (tools/openapi) and
# the TypeScript client (clients/typescript) need it. Debian 12 ships Node.js 18, so when the
# system's node is missing or older, the official Node.js binary, which the npm registry
# ships as the node-linux-<arch> package, is installed with a matching npm into .cache/node.
# The Makefile puts .cache/node's binaries first on PATH by itself whenever they exist.
#
#   bash .ci/node.sh    fetch a Node.js into .cache/node when the system's is too old
#   . .ci/node.sh       the same, and the calling shell's PATH leads to it (.ci/run)
#
# Fetching needs an npm, of any version: as root on a Debian system without one, it installs
# Debian's nodejs and npm packages first.

# Node.js 22, a long-term-support line, pinned so that every machine fetches the same build.
authly_node_version=22.23.5
authly_npm_version=10.9.9

# authly_node_ok reports whether node is 20.19 or later and npm is there too.
authly_node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
    node -e 'const [major, minor] = process.versions.node.split(".").map(Number);
      process.exit(major > 20 || (major === 20 && minor >= 19) ? 0 : 1)' 2>/dev/null
}

authly_ensure_node() {
  local root dir bin arch
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  dir="$root/.cache/node"
  bin="$dir/node_modules/.bin"
  # An earlier fetch of the pinned version is used as it is.
  if [ -x "$bin/node" ] && [ -x "$bin/npm" ] && [ "$("$bin/node" --version 2>/dev/null)" = "v$authly_node_version" ]; then
    PATH="$bin:$PATH"
    export PATH
  fi
  if authly_node_ok; then
    return 0
  fi

  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *)
      echo "no Node.js 20.19 or later, and the npm registry has no Node.js build for $(uname -m): install one" >&2
      return 1
      ;;
  esac
  if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
    else
      echo "no npm to fetch Node.js with: install Node.js 20.19 or later, or npm (Debian: apt-get install nodejs npm) and run this again" >&2
      return 1
    fi
  fi

  echo "Node.js $(node --version 2>/dev/null || echo '(none)') is older than 20.19:" \
    "installing Node.js $authly_node_version and npm $authly_npm_version from the npm registry into .cache/node"
  rm -rf "$dir"
  mkdir -p "$dir"
  # No package.json is written; --no-save keeps it so, and .cache is not tracked by git.
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    "node-linux-$arch@$authly_node_version" "npm@$authly_npm_version" || return 1
  PATH="$bin:$PATH"
  export PATH
  if ! authly_node_ok; then
    echo "the Node.js installed into .cache/node does not run: $("$bin/node" --version 2>&1)" >&2
    return 1
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  authly_ensure_node
  echo "node $(node --version) and npm $(npm --version) at $(command -v node)"
else
  authly_ensure_node
fi

#!/bin/sh
# Installs kiln $KILN_VERSION: the prebuilt binary for this OS and CPU from that
# release's assets, checked against the release's .sha256 for it; a checksum that
# doesn't match stops here. With no asset for this machine, it builds that version
# with `cargo install --locked`.
#   KILN_VERSION      the version (required), as `kiln --version` prints it
#   KILN_INSTALL_URL  where the assets are (default: the GitHub release of that version)
#   KILN_INSTALL_DIR  where kiln goes (default: ~/.cargo/bin)
set -eu
version="${KILN_VERSION:?set KILN_VERSION to the kiln version to install}"
base="${KILN_INSTALL_URL:-https://github.com/kiln-build/kiln/releases/download/v$version}"
dir="${KILN_INSTALL_DIR:-$HOME/.cargo/bin}"
if [ -x "$dir/kiln" ] && [ "$("$dir/kiln" --version 2>/dev/null)" = "kiln $version" ]; then
  echo "kiln $version is already installed in $dir"
  exit 0
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) triple=x86_64-unknown-linux-musl ;;
  Linux-aarch64 | Linux-arm64) triple=aarch64-unknown-linux-musl ;;
  Darwin-x86_64) triple=x86_64-apple-darwin ;;
  Darwin-arm64) triple=aarch64-apple-darwin ;;
  *) triple=none ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dir"
if curl -fsSL --retry 3 -o "$tmp/kiln" "$base/kiln-$triple" 2>/dev/null; then
  curl -fsSL --retry 3 -o "$tmp/kiln.sha256" "$base/kiln-$triple.sha256" || {
    echo "kiln install: kiln-$triple has no kiln-$triple.sha256 beside it: not installing an unchecked binary" >&2
    exit 1
  }
  want=$(cut -d ' ' -f 1 <"$tmp/kiln.sha256")
  got=$( (sha256sum "$tmp/kiln" 2>/dev/null || shasum -a 256 "$tmp/kiln") | cut -d ' ' -f 1)
  if [ -z "$want" ] || [ "$want" != "$got" ]; then
    echo "kiln install: kiln-$triple does not match kiln-$triple.sha256 (expected $want, got $got): not installing it" >&2
    exit 1
  fi
  chmod 755 "$tmp/kiln"
  mv "$tmp/kiln" "$dir/kiln"
else
  echo "kiln install: no prebuilt kiln $version for $(uname -s)-$(uname -m); building it with cargo" >&2
  cargo install --locked --version "$version" --root "$tmp/root" kiln
  mv "$tmp/root/bin/kiln" "$dir/kiln"
fi
if [ -n "${GITHUB_PATH:-}" ]; then echo "$dir" >>"$GITHUB_PATH"; fi
"$dir/kiln" --version

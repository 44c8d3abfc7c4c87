#!/bin/sh
# Installs kiln: the prebuilt binary for this OS and CPU from a release's assets,
# checked against the release's .sha256 for it; a checksum that doesn't match stops
# here. With no asset for this machine, it builds kiln's crate, cargo-kiln, at that
# version with `cargo install --locked` (it installs `kiln` and `cargo-kiln`).
# It says which source it used.
#   KILN_VERSION      the version, as `kiln --version` prints it (default: the latest release)
#   KILN_INSTALL_URL  where the assets are (default: the GitHub release of that version)
#   KILN_INSTALL_DIR  where kiln goes (default: ~/.cargo/bin)
set -eu
version="${KILN_VERSION:-latest}"
if [ "$version" = latest ]; then
  base="${KILN_INSTALL_URL:-https://github.com/kiln-build/kiln/releases/latest/download}"
else
  base="${KILN_INSTALL_URL:-https://github.com/kiln-build/kiln/releases/download/v$version}"
fi
dir="${KILN_INSTALL_DIR:-$HOME/.cargo/bin}"
if [ "$version" != latest ] && [ -x "$dir/kiln" ] && [ "$("$dir/kiln" --version 2>/dev/null)" = "kiln $version" ]; then
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
command -v curl >/dev/null 2>&1 || {
  echo "kiln install: curl is needed to download kiln (e.g. apt-get install curl)" >&2
  exit 1
}
# HTTPS only (file:// for a local mirror), whatever a redirect says.
case "$base" in
  https://*) proto='=https' ;;
  file://*) proto='=file' ;;
  *) echo "kiln install: KILN_INSTALL_URL must be https:// (or file://): $base" >&2; exit 1 ;;
esac
fetch() { curl --proto "$proto" --proto-redir "$proto" -fsSL --retry 3 -o "$1" "$2"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dir"
rc=0
if [ "$triple" = none ]; then rc=22; else fetch "$tmp/kiln" "$base/kiln-$triple" 2>/dev/null || rc=$?; fi
# 22: the server has no such asset; 37: no such file in a file:// mirror. Anything
# else (no network, DNS, TLS) is an error, not a reason to build from source.
if [ "$rc" != 0 ] && [ "$rc" != 22 ] && [ "$rc" != 37 ]; then
  echo "kiln install: downloading kiln-$triple from $base failed (curl exit $rc)" >&2
  exit 1
fi
if [ "$rc" = 0 ]; then
  fetch "$tmp/kiln.sha256" "$base/kiln-$triple.sha256" || {
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
  echo "kiln install: kiln-$triple from $base (SHA-256 checked) into $dir" >&2
else
  echo "kiln install: no prebuilt kiln $version for $(uname -s)-$(uname -m) at $base; building it with cargo (crates.io: cargo-kiln $version)" >&2
  # Outside the checkout: the repository's .cargo/config.toml (a rustc-wrapper) and
  # rust-toolchain.toml must not take part in building kiln.
  if [ "$version" = latest ]; then
    (cd "$tmp" && cargo install --locked --root "$tmp/root" cargo-kiln)
  else
    (cd "$tmp" && cargo install --locked --version "$version" --root "$tmp/root" cargo-kiln)
  fi
  mv "$tmp/root/bin/kiln" "$dir/kiln"
  if [ -f "$tmp/root/bin/cargo-kiln" ]; then mv "$tmp/root/bin/cargo-kiln" "$dir/cargo-kiln"; fi
  echo "kiln install: cargo-kiln $version built by cargo into $dir" >&2
fi
if [ -n "${GITHUB_PATH:-}" ]; then echo "$dir" >>"$GITHUB_PATH"; fi
"$dir/kiln" --version

#!/bin/sh
# Installs @NAME@ @VERSION@ (written by `kiln release`).
#
#   sh install.sh [--to DIR] [--base-url URL] [BINARY...]
#
# Picks the archive for this machine (Linux x86_64 or aarch64), downloads it over
# HTTPS (or from a file:// URL), checks its SHA-256 against the digest written into
# this script, and copies the binaries to DIR (default ~/.local/bin). Nothing it
# downloads is run, and nothing is installed unless every check passed.
set -eu

version='@VERSION@'
base_url='@BASE_URL@'
to="${HOME:-}/.local/bin"
# binary, architecture, archive, SHA-256 (the lines of SHA256SUMS for the archives).
archives='@ARCHIVES@'

say() { printf 'install: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

wanted=''
while [ $# -gt 0 ]; do
    case "$1" in
        --to) [ $# -ge 2 ] || die "--to needs a directory"; to=$2; shift 2 ;;
        --to=*) to=${1#--to=}; shift ;;
        --base-url) [ $# -ge 2 ] || die "--base-url needs a URL"; base_url=$2; shift 2 ;;
        --base-url=*) base_url=${1#--base-url=}; shift ;;
        -h|--help) echo "usage: sh install.sh [--to DIR] [--base-url URL] [BINARY...]"; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) wanted="$wanted $1"; shift ;;
    esac
done

[ -n "$to" ] || die "no install directory: pass --to DIR"
[ -n "$base_url" ] || die "this release names no download location: pass --base-url URL"

os=$(uname -s)
case "$os" in
    Linux) ;;
    *) die "$os is not built by this release: only Linux on x86_64 (amd64) and aarch64 (arm64)" ;;
esac
case "$(uname -m)" in
    x86_64|amd64) arch=amd64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) die "$(uname -m) is not built by this release: only x86_64 (amd64) and aarch64 (arm64)" ;;
esac

case "$base_url" in
    https://*) proto='=https' ;;
    file://*) proto='=file' ;;
    *) die "refusing to download from $base_url: only https:// (or file://) URLs" ;;
esac
base_url=${base_url%/}

if command -v sha256sum >/dev/null 2>&1; then
    digest() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
    digest() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
    die "neither sha256sum nor shasum is installed: the download can't be checked"
fi
command -v curl >/dev/null 2>&1 || die "curl is not installed"
command -v tar >/dev/null 2>&1 || die "tar is not installed"

available=$(printf '%s\n' "$archives" | awk -v a="$arch" '$2 == a { print $1 }')
[ -n "$available" ] || die "this release has no binaries for linux/$arch"
if [ -z "$wanted" ]; then
    wanted=$available
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Download and check everything first: a failure installs nothing.
plan=''
for bin in $wanted; do
    line=$(printf '%s\n' "$archives" | awk -v b="$bin" -v a="$arch" '$1 == b && $2 == a')
    # shellcheck disable=SC2086 # the names are words
    [ -n "$line" ] || die "no binary named $bin for linux/$arch in this release (it has: $(printf '%s ' $available))"
    # shellcheck disable=SC2086 # four words
    set -- $line
    archive=$3 expected=$4
    say "downloading $archive"
    curl --proto "$proto" --proto-redir "$proto" --tlsv1.2 -fsSL --retry 3 -o "$tmp/$archive" "$base_url/$archive" \
        || die "download of $base_url/$archive failed"
    actual=$(digest "$tmp/$archive")
    [ "$actual" = "$expected" ] \
        || die "checksum mismatch for $archive: expected $expected, got $actual; nothing was installed"
    mkdir "$tmp/$bin.d"
    tar -xzf "$tmp/$archive" -C "$tmp/$bin.d"
    dir=${archive%.tar.gz}
    [ -f "$tmp/$bin.d/$dir/$bin" ] || die "$archive holds no $dir/$bin"
    plan="$plan $bin:$tmp/$bin.d/$dir/$bin"
done

mkdir -p "$to"
for item in $plan; do
    bin=${item%%:*} src=${item#*:}
    cp "$src" "$to/.$bin.kiln-install"
    chmod 755 "$to/.$bin.kiln-install"
    mv -f "$to/.$bin.kiln-install" "$to/$bin"
    say "installed $bin $version to $to/$bin"
done
case ":${PATH:-}:" in
    *":$to:"*) ;;
    *) say "$to is not on PATH: add it to run the binaries by name" ;;
esac

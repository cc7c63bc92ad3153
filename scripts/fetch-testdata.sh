#!/usr/bin/env bash
# Fetch Debian's ndpi 4.2 source package and unpack its real captures
# (tests/pcap/) and nDPI's expected per-flow results (tests/result/) into
# testdata/ndpi/ (git-ignored). Nothing fetched is ever committed.
#
# The machines configure no deb-src, so we derive one from the Debian archive
# apt's own deb822 sources already name and run apt against a private state
# directory: the system's apt configuration is never touched.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/testdata/ndpi"
orig_sha256=e54ce8fe13adc5d747be7553513657fae78f796e0bd459e122c280cc06ce4daf
orig=ndpi_4.2.orig.tar.gz

if [ -f "$cache/.complete" ]; then
    echo "fetch-testdata: cached in testdata/ndpi ($(ls "$cache/pcap" | wc -l) captures)"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sources.list.d" "$work/lists/partial" "$work/dl"

# Derive deb-src stanzas from the deb822 sources that name the Debian archive.
uri=""; suite=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    u=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$f" | head -1)
    case "$u" in
        *debian.org/debian|*debian.org/debian/) uri=$u
            suite=$(sed -n 's/^Suites:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$f" | head -1)
            break ;;
    esac
done
if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    read -r uri suite < <(awk '$1=="deb" && $2 ~ /debian\.org\/debian\/?$/ {print $2, $3; exit}' /etc/apt/sources.list) || true
fi
if [ -z "$uri" ]; then
    echo "fetch-testdata: no Debian archive found in apt's sources (/etc/apt/sources.list.d/*.sources)" >&2
    exit 1
fi
cat > "$work/sources.list.d/ndpi-src.sources" <<SRC
Types: deb-src
URIs: $uri
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

apt_private=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/sources.list.d"
             -o "Dir::State::Lists=$work/lists" -o Debug::NoLocking=1)
echo "fetch-testdata: deb-src $uri $suite (private apt state in $work)"
apt-get -qq "${apt_private[@]}" update
# apt fetches the orig tarball first; the debian tarball may then fail. That
# is expected: we only need the orig tarball, verified by its sha256 below.
(cd "$work/dl" && apt-get -qq "${apt_private[@]}" source --download-only ndpi=4.2-1 >/dev/null 2>&1) ||
(cd "$work/dl" && apt-get -qq "${apt_private[@]}" source --download-only ndpi >/dev/null 2>&1) || true
if [ ! -f "$work/dl/$orig" ]; then
    echo "fetch-testdata: $orig did not arrive from $uri" >&2
    exit 1
fi
got=$(sha256sum "$work/dl/$orig" | cut -d' ' -f1)
if [ "$got" != "$orig_sha256" ]; then
    echo "fetch-testdata: $orig sha256 mismatch: got $got, want $orig_sha256" >&2
    exit 1
fi

rm -rf "$cache.tmp"; mkdir -p "$cache.tmp"
tar -xzf "$work/dl/$orig" -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'nDPI*' -o -maxdepth 1 -type d -name 'ndpi*' | head -1)
cp -r "$src/tests/pcap" "$cache.tmp/pcap"
cp -r "$src/tests/result" "$cache.tmp/result"
cp "$src/COPYING" "$cache.tmp/COPYING" 2>/dev/null || true
cat > "$cache.tmp/PROVENANCE" <<P
Debian source package ndpi, orig tarball $orig (sha256 $orig_sha256),
from $uri ($suite). tests/pcap: real captures shipped by nDPI; tests/result:
nDPI 4.2's expected per-flow output for each capture. LGPL-3 (nDPI).
Fetched $(date -u +%Y-%m-%dT%H:%M:%SZ) by scripts/fetch-testdata.sh.
P
rm -rf "$cache"; mv "$cache.tmp" "$cache"
touch "$cache/.complete"
echo "fetch-testdata: $(ls "$cache/pcap" | wc -l) captures, $(ls "$cache/result" | wc -l) results in testdata/ndpi"

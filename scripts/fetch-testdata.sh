#!/usr/bin/env bash
# Fetch Debian's ndpi 4.2 source package and unpack its real captures
# (tests/pcap/) and nDPI's expected per-flow results (tests/result/) into
# testdata/ndpi/ (git-ignored). Nothing fetched is ever committed.
#
# The machines configure no deb-src, so scripts/debsrc.sh derives one from the
# Debian archive apt's own deb822 sources already name and runs apt against a
# private state directory: the system's apt configuration is never touched.
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
debsrc_tag=fetch-testdata
. "$top/scripts/debsrc.sh"
debsrc_setup "$work"
debsrc_fetch ndpi 4.2-1 "$orig" "$orig_sha256"
uri=$debsrc_uri; suite=$debsrc_suite

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

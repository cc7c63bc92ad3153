#!/usr/bin/env bash
# Fetch more real captures from Debian 12 source packages and label each one
# with Debian's ndpiReader (libndpi-bin, nDPI 4.2) exactly as nDPI's own
# tests/do.sh labels its captures:
#   ndpiReader -p protos.txt -c categories.txt -r risky_domains.txt \
#              -j ja3_fingerprints.csv -S sha1_fingerprints.csv \
#              -q -t -i pcap/CAPTURE -w result/CAPTURE.out -v 2
# (the five files come from nDPI 4.2's example/ directory, taken from the same
# ndpi orig tarball scripts/fetch-testdata.sh verifies).
#
# Result (git-ignored, nothing fetched is ever committed):
#   testdata/extra/ndpi-config/    the five ndpiReader inputs above
#   testdata/extra/SOURCE/pcap/    captures (.gz ones decompressed)
#   testdata/extra/SOURCE/result/  CAPTURE.out, one per capture in pcap/
#   testdata/extra/SOURCE/skipped.txt      captures ndpiReader cannot read
#   testdata/extra/SOURCE/read-errors.txt  kept; ndpiReader stopped early
#   testdata/extra/SOURCE/PROVENANCE, COPYING*, .complete
# Each source is cached on its own (.complete); a rerun fetches only what is
# missing. A capture whose bytes equal an earlier one of the same source is
# skipped as a duplicate.
# Usage: scripts/fetch-extra-captures.sh [SOURCE...|all]
#   no argument: the default sources (wireshark tcpflow dnscap dpkt);
#   tcpdump (mostly dissector regression and fuzzer cases) only when named
#   or with `all`.
# Environment: NDPI_READER (default ndpiReader), DEBSRC_URI/DEBSRC_SUITE
# (override the archive derived from apt's sources).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
extra="$top/testdata/extra"
reader_bin=${NDPI_READER:-ndpiReader}
tag=fetch-extra-captures

# SOURCE  package  Debian version  orig tarball  sha256  licence file(s)  capture globs
# (globs relative to the tarball's top directory; sha256 as in bookworm's
# Sources index).
sources=(
"wireshark|wireshark|4.0.17-0+deb12u3|wireshark_4.0.17.orig.tar.bz2|62fd1491b6211d1651a16a45ead15808970b3a6a9ebde2537f96722af47aaaa5|COPYING|test/captures/*.pcap test/captures/*.pcapng test/captures/*.pcap.gz test/captures/*.pcapng.gz"
"tcpflow|tcpflow|1.6.1-2|tcpflow_1.6.1.orig.tar.gz|c1c88513473e12011c0c00bba88dd02013ea3b813b08088f250cbf82b8f42358|COPYING|tests/*.pcap samplePcaps/*.cap"
"dnscap|dnscap|2.1.1-1|dnscap_2.1.1.orig.tar.xz|808040a5388c8b3281e905cba3ec4a17d6451ac1aa369b58e06da4e2c65a8acd|LICENSE|src/test/*.pcap"
"dpkt|python-dpkt|1.9.8-1|python-dpkt_1.9.8.orig.tar.gz|9990639e19a9c8f1db4af453b7e6a45ef2995ec03e13bac35b9824839fd46867|LICENSE|examples/data/*.pcap"
"tcpdump|tcpdump|4.99.3-1|tcpdump_4.99.3.orig.tar.gz|ad75a6ed3dc0d9732945b2e5483cb41dc8b4b528a169315e499c6861952e73b3|LICENSE|tests/*.pcap tests/*.pcapng"
)
ndpi_orig=ndpi_4.2.orig.tar.gz
ndpi_sha256=e54ce8fe13adc5d747be7553513657fae78f796e0bd459e122c280cc06ce4daf
ndpi_config=(protos.txt categories.txt risky_domains.txt ja3_fingerprints.csv sha1_fingerprints.csv)

default_sources=(wireshark tcpflow dnscap dpkt)
want=("$@")
if [ ${#want[@]} -eq 0 ]; then want=("${default_sources[@]}"); fi
if [ "${want[*]}" = all ]; then want=(); fi
selected() {
    [ ${#want[@]} -eq 0 ] && return 0
    local w; for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}
for w in ${want[@]+"${want[@]}"}; do
    ok=0; for s in "${sources[@]}"; do [ "${s%%|*}" = "$w" ] && ok=1; done
    [ $ok = 1 ] || { echo "$tag: unknown source '$w' (known: $(printf '%s ' "${sources[@]%%|*}"))" >&2; exit 2; }
done

todo=()
for s in "${sources[@]}"; do
    name=${s%%|*}
    selected "$name" || continue
    if [ -f "$extra/$name/.complete" ]; then
        echo "$tag: $name cached in testdata/extra/$name ($(ls "$extra/$name/pcap" | wc -l) captures)"
    else
        todo+=("$s")
    fi
done
[ ${#todo[@]} -eq 0 ] && exit 0

if ! command -v "$reader_bin" >/dev/null 2>&1; then
    echo "$tag: $reader_bin not found (Debian: apt-get install libndpi-bin)" >&2
    exit 1
fi
reader_version=$("$reader_bin" -h 2>&1 | sed -n 's/^Welcome to nDPI \([^ ]*\).*/\1/p' | head -1)
case "$reader_version" in
    4.2|4.2.*) ;;
    *) echo "$tag: warning: $reader_bin is nDPI '${reader_version:-?}', not 4.2: labels will not match nDPI 4.2's tests/result" >&2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
debsrc_tag=$tag
. "$top/scripts/debsrc.sh"
debsrc_setup "$work"
mkdir -p "$extra"

# ndpiReader's inputs, from nDPI 4.2's example/ (as tests/do.sh uses them).
cfg="$extra/ndpi-config"
if [ ! -f "$cfg/.complete" ]; then
    echo "$tag: fetching $ndpi_orig for nDPI's example/ files"
    debsrc_fetch ndpi 4.2-1 "$ndpi_orig" "$ndpi_sha256"
    mkdir -p "$work/ndpi"
    tar -xzf "$work/dl/$ndpi_orig" -C "$work/ndpi" --wildcards "${ndpi_config[@]/#/*/example/}"
    rm -rf "$cfg.tmp"; mkdir -p "$cfg.tmp"
    for f in "${ndpi_config[@]}"; do cp "$work/ndpi"/*/example/"$f" "$cfg.tmp/"; done
    rm -rf "$cfg"; mv "$cfg.tmp" "$cfg"; touch "$cfg/.complete"
    rm -f "$work/dl/$ndpi_orig"
fi
reader=("$reader_bin" -p "$cfg/protos.txt" -c "$cfg/categories.txt" -r "$cfg/risky_domains.txt"
        -j "$cfg/ja3_fingerprints.csv" -S "$cfg/sha1_fingerprints.csv")

failed=()
for s in "${todo[@]}"; do
    IFS='|' read -r name pkg ver orig sha lic globs <<<"$s"
    echo "$tag: $name: Debian source $pkg $ver"
    if ! debsrc_fetch "$pkg" "$ver" "$orig" "$sha"; then failed+=("$name"); continue; fi
    src="$work/src-$name"; mkdir -p "$src"
    # shellcheck disable=SC2086 # globs is a word list
    set -f; pats=(); for g in $globs $lic; do pats+=("*/$g"); done; set +f
    tar -xf "$work/dl/$orig" -C "$src" --wildcards "${pats[@]}" 2>/dev/null || true
    root=$(find "$src" -mindepth 1 -maxdepth 1 -type d | head -1)
    dest="$extra/$name"
    rm -rf "$dest.tmp"; mkdir -p "$dest.tmp/pcap" "$dest.tmp/result"
    : > "$dest.tmp/skipped.txt"; : > "$dest.tmp/read-errors.txt"; : > "$work/sums"
    for l in $lic; do cp "$root/$l" "$dest.tmp/COPYING.upstream-$(basename "$l")" 2>/dev/null || true; done
    # debian/copyright, when the archive also has the debian tarball.
    deb=$(ls "$work/dl/${pkg}_${ver#*:}".debian.tar.* 2>/dev/null | head -1 || true)
    if [ -n "$deb" ]; then
        tar -xf "$deb" -O debian/copyright > "$dest.tmp/COPYING.debian-copyright" 2>/dev/null ||
            rm -f "$dest.tmp/COPYING.debian-copyright"
    fi
    n=0; kept=0; skipped=0; errs=0
    set -f; files=(); for g in $globs; do files+=("$g"); done; set +f
    while IFS= read -r f; do
        n=$((n + 1))
        base=$(basename "$f"); base=${base%.gz}
        if [ -e "$dest.tmp/pcap/$base" ]; then
            printf '%s\t%s\n' "$f" "name taken by another capture" >> "$dest.tmp/skipped.txt"
            skipped=$((skipped + 1)); continue
        fi
        case "$f" in
            *.gz) gzip -dc "$f" > "$dest.tmp/pcap/$base" ;;
            *) cp "$f" "$dest.tmp/pcap/$base" ;;
        esac
        h=$(sha256sum "$dest.tmp/pcap/$base" | cut -d' ' -f1)
        dup=$(awk -v h="$h" '$1==h {print $2; exit}' "$work/sums")
        if [ -n "$dup" ]; then
            printf '%s\tsame bytes as %s\n' "$base" "$dup" >> "$dest.tmp/skipped.txt"
            rm -f "$dest.tmp/pcap/$base"; skipped=$((skipped + 1)); continue
        fi
        rc=0
        log=$(cd "$dest.tmp" && timeout 300 "${reader[@]}" -q -t -i "pcap/$base" -w "result/$base.out" -v 2 2>&1) || rc=$?
        if [ $rc -ne 0 ] || grep -qE 'ERROR: could not open|Unsupported datalink' <<<"$log"; then
            why=$(grep -m1 -E 'ERROR|Unsupported|Error' <<<"$log" || true)
            printf '%s\t%s\n' "$base" "${why:-ndpiReader exit status $rc}" >> "$dest.tmp/skipped.txt"
            rm -f "$dest.tmp/pcap/$base" "$dest.tmp/result/$base.out"
            skipped=$((skipped + 1))
            continue
        fi
        if grep -q 'Error while reading pcap file' <<<"$log"; then
            printf '%s\t%s\n' "$base" "$(grep -m1 'Error while reading' <<<"$log")" >> "$dest.tmp/read-errors.txt"
            errs=$((errs + 1))
        fi
        echo "$h $base" >> "$work/sums"
        kept=$((kept + 1))
    done < <(cd "$root" && for g in "${files[@]}"; do for f in $g; do [ -f "$f" ] && echo "$root/$f"; done; done | sort)
    flows=$(cat "$dest.tmp/result/"*.out 2>/dev/null | grep -caP '^\s+\d+\s+\S+\s+\S+\s+(<->|->)\s+\S+\s+(\[VLAN: \d+\])?\[proto:' || true)
    cat > "$dest.tmp/PROVENANCE" <<P
Debian source package $pkg $ver, orig tarball $orig (sha256 $sha),
from $debsrc_uri ($debsrc_suite). Captures: $globs (.gz decompressed).
Labels: result/CAPTURE.out written by $reader_bin (nDPI ${reader_version:-?}) with
nDPI's tests/do.sh options: -p protos.txt -c categories.txt -r risky_domains.txt
-j ja3_fingerprints.csv -S sha1_fingerprints.csv -q -t -i pcap/CAPTURE -w result/CAPTURE.out -v 2
(files in testdata/extra/ndpi-config, from $ndpi_orig).
$n captures found, $kept kept, $skipped skipped (unreadable or duplicate, skipped.txt), $errs read errors (kept, read-errors.txt); $flows flow lines.
Fetched $(date -u +%Y-%m-%dT%H:%M:%SZ) by scripts/fetch-extra-captures.sh.
P
    rm -rf "$dest"; mv "$dest.tmp" "$dest"
    touch "$dest/.complete"
    rm -rf "$src" "$work/dl/"*
    echo "$tag: $name: $kept captures labelled ($flows flows), $skipped skipped (unreadable or duplicate: skipped.txt), $errs read errors, in testdata/extra/$name"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "$tag: could not fetch: ${failed[*]} (the others are in testdata/extra)" >&2
    exit 1
fi

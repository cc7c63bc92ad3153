#!/usr/bin/env bash
# Checks that scripts/fetch-extra-captures.sh labels captures as nDPI's own
# tests/do.sh does: relabels nDPI's captures (testdata/ndpi/pcap) with the same
# ndpiReader command and inputs (testdata/extra/ndpi-config) and compares each
# result with nDPI 4.2's shipped testdata/ndpi/result/CAPTURE.out: byte for
# byte, and on the flow lines' endpoints, [proto: ...] and [Confidence: ...].
# Needs `make testdata extra-testdata` first. Usage: scripts/check-ndpi-relabel.sh
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
ndpi="$top/testdata/ndpi"; cfg="$top/testdata/extra/ndpi-config"
for f in "$ndpi/.complete" "$cfg/.complete"; do
    [ -f "$f" ] || { echo "check-ndpi-relabel: missing $f (run make testdata extra-testdata)" >&2; exit 1; }
done
reader=("${NDPI_READER:-ndpiReader}" -p "$cfg/protos.txt" -c "$cfg/categories.txt" -r "$cfg/risky_domains.txt"
        -j "$cfg/ja3_fingerprints.csv" -S "$cfg/sha1_fingerprints.csv")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/result"; ln -s "$ndpi/pcap" "$work/pcap"
# Flow line → "endpoints proto confidence", sorted.
key() { sed -nE 's/^\s+[0-9]+\s+(\S+ \S+ (<->|->) \S+) (\[VLAN: [0-9]+\])?\[proto: ([^]]+)\].*\[Confidence: ([^]]+)\].*/\1 \3 \4 \5/p' "$1" | sort; }
same=0; flowsame=0; n=0; lines=0; linediff=0
for out in "$ndpi/result/"*.out; do
    c=$(basename "$out" .out)
    [ -f "$ndpi/pcap/$c" ] || continue
    n=$((n + 1))
    (cd "$work" && "${reader[@]}" -q -t -i "pcap/$c" -w "result/$c.out" -v 2 >/dev/null 2>&1) || true
    if cmp -s "$out" "$work/result/$c.out"; then same=$((same + 1)); flowsame=$((flowsame + 1))
    else
        d=$(diff <(key "$out") <(key "$work/result/$c.out") | grep -c '^<' || true)
        linediff=$((linediff + d))
        if [ "$d" -eq 0 ]; then flowsame=$((flowsame + 1)); echo "  $c: differs outside endpoints/proto/confidence"
        else echo "  $c: $d flow lines differ in endpoints/proto/confidence"; fi
    fi
    lines=$((lines + $(key "$out" | wc -l)))
done
echo "check-ndpi-relabel: $n captures: $same byte-identical, $flowsame with identical flow labels; $linediff of $lines flow lines differ"
[ "$flowsame" -eq "$n" ]

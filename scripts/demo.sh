#!/usr/bin/env bash
# make demo: replays a few real captures from the fetched nDPI set through the
# real FlowManager program (BPF_PROG_TEST_RUN) and shows the flows it tracked,
# the packets it selected and its counters.
set -euo pipefail
BUILD=${1:-build}
ETCPIPE="$BUILD/etcpipe"
PCAPS=testdata/ndpi/pcap
OUT="$BUILD/demo"
mkdir -p "$OUT"

if [[ $(id -u) -ne 0 ]]; then
    echo "demo: BPF_PROG_TEST_RUN needs root (CAP_BPF + CAP_NET_ADMIN); run as root" >&2
    exit 3
fi

"$ETCPIPE" version
for cap in signal.pcap quic.pcap tls_verylong_certificate.pcap; do
    [[ -f "$PCAPS/$cap" ]] || { echo "demo: $PCAPS/$cap missing (make testdata)" >&2; exit 4; }
    name=${cap%.*}
    echo
    echo "=== $cap: first 10 payload packets of every flow (N=10, inline delivery) ==="
    "$ETCPIPE" replay --table -q "$PCAPS/$cap" | head -n 21
    "$ETCPIPE" replay "$PCAPS/$cap" -o "$OUT/$name.jsonl" -w "$OUT/$name.selected.pcap"
    echo "flows as JSON Lines: $OUT/$name.jsonl ($(wc -l < "$OUT/$name.jsonl") flows); first one:"
    head -n 1 "$OUT/$name.jsonl"
done
echo
echo "Selected packets are in $OUT/*.selected.pcap (open them in Wireshark)."

echo
echo "=== ANOVA state split: the seed's series through the XDP program (BPF_PROG_TEST_RUN) ==="
"$ETCPIPE" anova split testdata/anova/osh_000001SZ_daily.txt --plot "$OUT/osh_splits.svg" | tail -n 4
echo
echo "=== Can it be offloaded to an NFP SmartNIC? ==="
"$ETCPIPE" check --target nfp "$BUILD/bpf/anova.bpf.o" || true
"$ETCPIPE" check --target nfp "$BUILD/bpf/flowmgr.bpf.o" | tail -n 3 || true

echo
echo "=== Classification: the shipped ONNX model (models/etc_app.onnx) on three of its held-out captures ==="
MODEL=models/etc_app.onnx
for cap in skype.pcap quic.pcap 1kxun.pcap; do
    "$ETCPIPE" classify "$PCAPS/$cap" --model "$MODEL" -o "$OUT/${cap%.*}.classes.jsonl"
    echo "first flow of $cap:"
    head -n 1 "$OUT/${cap%.*}.classes.jsonl" | cut -c1-300
done
echo "(held-out accuracy and the confusion matrix: models/etc_app.md)"

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
echo "=== Live: etcpipe run on a veth pair between two namespaces (made here, removed at the end) ==="
NSA=etcpipe-demo-a-$$ NSB=etcpipe-demo-b-$$
cleanup_ns() { ip netns del "$NSA" 2>/dev/null || true; ip netns del "$NSB" 2>/dev/null || true; }
trap cleanup_ns EXIT
ip netns add "$NSA" && ip netns add "$NSB"
for ns in "$NSA" "$NSB"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$NSA" link add veth0 type veth peer name veth1 netns "$NSB"
ip -n "$NSA" link set veth0 up && ip -n "$NSB" link set veth1 up
rm -rf "$OUT/live" "$OUT/live.ready"
nsenter --net=/run/netns/"$NSB" "$ETCPIPE" run veth1 --features payload:10x256,sizes:10,iat:10 \
    -o "$OUT/live" --ready-file "$OUT/live.ready" 2> "$OUT/live.log" &
RUN=$!
for _ in $(seq 100); do [[ -s "$OUT/live.ready" ]] && break; sleep 0.1; done
for cap in signal.pcap quic.pcap tls_verylong_certificate.pcap; do
    nsenter --net=/run/netns/"$NSA" "$ETCPIPE" send "$PCAPS/$cap" veth0
done
sleep 0.5
nsenter --net=/run/netns/"$NSB" "$ETCPIPE" status veth1 | head -n 12
kill -INT "$RUN" && wait "$RUN"
echo "final counters ($OUT/live.log):"
grep -E '^  (rx|selected|verdict_redirect|xsk_rx|accepted|flows_complete|flows_partial) ' "$OUT/live.log"
echo "features of $(($(wc -l < "$OUT/live/part-000000/flows.csv") - 1)) flows in $OUT/live/part-000000/"
cleanup_ns
trap - EXIT

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

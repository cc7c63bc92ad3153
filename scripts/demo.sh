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
DEMO_CAPS=()
for cap in signal.pcap quic.pcap tls_verylong_certificate.pcap; do
    [[ -f "$PCAPS/$cap" ]] || { echo "demo: $PCAPS/$cap missing (make testdata)" >&2; exit 4; }
    DEMO_CAPS+=("$PCAPS/$cap")
done
echo
echo "=== signal.pcap: first 10 payload packets of every flow (N=10, inline delivery) ==="
"$ETCPIPE" replay --table -q "$PCAPS/signal.pcap" | head -n 21
echo
echo "=== Three captures in one replay (the program loaded once, reset between them) ==="
"$ETCPIPE" replay "${DEMO_CAPS[@]}" -o "$OUT/replay.jsonl" -w "$OUT/replay.selected.pcap"
echo "flows as JSON Lines: $OUT/replay.jsonl ($(wc -l < "$OUT/replay.jsonl") flows, each with its capture); first one:"
head -n 1 "$OUT/replay.jsonl"
echo "Selected packets, whole, in input order: $OUT/replay.selected.pcap (open it in Wireshark)."
echo
echo "=== The whole nDPI capture directory in one replay (one job per core) ==="
"$ETCPIPE" replay "$PCAPS" -o "$OUT/all.replay.jsonl" 2>&1 | grep -v '^  ' || true

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
"$ETCPIPE" check --target nfp "$BUILD/bpf/anova.bpf.o" "$BUILD/bpf/anova_f64.bpf.o" || true
"$ETCPIPE" check --target nfp "$BUILD/bpf/flowmgr.bpf.o" | tail -n 3 || true

echo
echo "=== In-NIC digit CNN: the 450 held-out digits (python3-sklearn's) through xdp_nicnn ==="
"$ETCPIPE" nicnn classify --digits | head -n 5
"$ETCPIPE" check --target nfp "$BUILD/bpf/nicnn.bpf.o" | tail -n 2 || true

echo
echo "=== Per-packet tagger: every packet of quic.pcap tagged on its own (xdp_pkttag_meta; xdp_pkttag writes the same tag into the DSCP), majority per flow ==="
"$ETCPIPE" replay "$PCAPS/quic.pcap" --prog pkttag --flows-only -t 2>&1 | head -n 8
"$ETCPIPE" check --target nfp "$BUILD/bpf/pkttag.bpf.o" | tail -n 2 || true

echo
echo "=== Classification: the shipped ONNX model (models/etc_app.onnx) on three of its held-out captures ==="
MODEL=models/etc_app.onnx
"$ETCPIPE" classify "$PCAPS/skype.pcap" "$PCAPS/signal.pcap" "$PCAPS/1kxun.pcap" --model "$MODEL" \
    -o "$OUT/classes.jsonl"
echo "first flow:"
head -n 1 "$OUT/classes.jsonl" | cut -c1-300
echo "(held-out accuracy and the confusion matrix: models/etc_app.md)"
echo
echo "=== Every fetched capture in one process: a dataset, and every flow classified ==="
echo "(one capture, fuzz-2021-10-13.pcap, is corrupt on purpose: it is named, counted, and the rest go on)"
"$ETCPIPE" features "$PCAPS" -o "$OUT/dataset" --features payload:10x256,sizes:10,iat:10 || true
"$ETCPIPE" classify "$PCAPS" --model "$MODEL" -o "$OUT/all.classes.jsonl" || true

echo
echo "=== Market data: FAST 1.1 records from a file, a live UDP feed over XDP + AF_XDP, a mirror port ==="
TPL=testdata/mdfeed/sse.xml
"$ETCPIPE" md send -t "$TPL" --file "$OUT/feed.step" -c 50
"$ETCPIPE" md decode "$OUT/feed.step" -t "$TPL" -q -o "$OUT/feed.jsonl"
echo "$OUT/feed.step: $(wc -l < "$OUT/feed.jsonl") records; the first:"
head -n 1 "$OUT/feed.jsonl"
# An exchange, a member and a monitor port that tc mirred feeds (as a switch SPAN port).
MX=etcpipe-mdx-$$ MM=etcpipe-mdm-$$ MO=etcpipe-mdo-$$
cleanup_md() { for ns in "$MX" "$MM" "$MO"; do ip netns del "$ns" 2>/dev/null || true; done; }
trap cleanup_md EXIT
for ns in "$MX" "$MM" "$MO"; do
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip -n "$MX" link add mdx0 type veth peer name mdm0 netns "$MM"
ip -n "$MM" link add span0 type veth peer name span1 netns "$MO"
ip -n "$MX" addr add 10.79.9.1/24 dev mdx0 && ip -n "$MM" addr add 10.79.9.2/24 dev mdm0
for l in "$MX mdx0" "$MM mdm0" "$MM span0" "$MO span1"; do set -- $l; ip -n "$1" link set "$2" up; done
tc -n "$MM" qdisc add dev mdm0 clsact
for dir in ingress egress; do
    tc -n "$MM" filter add dev mdm0 "$dir" protocol all u32 match u32 0 0 action mirred egress mirror dev span0
done
rm -f "$OUT/md.ready"
echo "--- UDP: md listen on the member's veth (XDP + AF_XDP), md send from the exchange ---"
ip netns exec "$MM" "$ETCPIPE" md listen mdm0 -t "$TPL" --udp 5000 --seq-preamble -d 20 --latency \
    -o "$OUT/md-udp.jsonl" --ready-file "$OUT/md.ready" 2> "$OUT/md-udp.log" &
LISTEN=$!
for _ in $(seq 100); do [[ -s "$OUT/md.ready" ]] && break; sleep 0.1; done
ip netns exec "$MX" "$ETCPIPE" md send -t "$TPL" --udp 10.79.9.2:5000 -c 1000 --rate 5000 --seq-preamble
sleep 0.3
kill -INT "$LISTEN" && wait "$LISTEN" || true
echo "$(wc -l < "$OUT/md-udp.jsonl") records in $OUT/md-udp.jsonl; from $OUT/md-udp.log:"
grep -E '^latency|redirect_udp|records|decode_errors' "$OUT/md-udp.log" || true
echo "--- TCP on a mirror port: STEP from the exchange to the member's kernel client, reassembled from the copy ---"
rm -f "$OUT/md.ready"
ip netns exec "$MO" "$ETCPIPE" md listen span1 -t "$TPL" --tcp-server 10.79.9.1:9000 -d 20 --latency \
    -o "$OUT/md-mirror.jsonl" --ready-file "$OUT/md.ready" 2> "$OUT/md-mirror.log" &
LISTEN=$!
for _ in $(seq 100); do [[ -s "$OUT/md.ready" ]] && break; sleep 0.1; done
ip netns exec "$MX" "$ETCPIPE" md send -t "$TPL" --tcp 10.79.9.1:9000 -c 500 --rate 5000 --size 1408 &
SEND=$!
ip netns exec "$MM" "$ETCPIPE" md recv -t "$TPL" --tcp 10.79.9.1:9000 -o /dev/null 2> "$OUT/md-recv.log"
wait "$SEND"
sleep 0.3
kill -INT "$LISTEN" && wait "$LISTEN" || true
echo "member (kernel TCP client): $(grep -E '^  records' "$OUT/md-recv.log" | awk '{print $2}') records"
echo "monitor port (mirror + reassembly): $(wc -l < "$OUT/md-mirror.jsonl") records; from $OUT/md-mirror.log:"
grep -E '^latency|tcp_bytes_delivered|tcp_bytes_lost|step_messages |redirect_tcp' "$OUT/md-mirror.log" || true
cleanup_md
trap - EXIT
echo "(market data in full: README.md, section Market data; make bench for the latency table)"

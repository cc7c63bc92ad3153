#!/usr/bin/python3
"""Counts captures, flows and nDPI application labels in ndpiReader result
files (the tables of testdata/PROVENANCE.md). Standard library only.

A flow is one flow line of a CAPTURE.out ("\\t1\\tTCP a:p <-> b:q [proto: ...]").
A labelled flow is one whose [Confidence: ...] is "DPI" or "DPI (cache)"; port
and address guesses ("Match by port", "Match by IP"), "Unknown" and any other
confidence are counted but not labelled. The label is the last component of
"proto: M.A/Master.App" (App when present, else Master); a lookup whose master
is DNS ("DNS.Google") is labelled DNS, as scripts/train.py does.

Usage: scripts/count-labels.py [--top N] DIR...
DIR is a source directory holding result/ (and pcap/), e.g. testdata/ndpi or
testdata/extra/wireshark, or a directory of .out files. Prints Markdown.
"""
import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ndpi_results import CONFIDENCE, FLOW_LINE, label_of  # noqa: E402

LABELLED = ("DPI", "DPI (cache)")


def count(directory):
    res = os.path.join(directory, "result")
    if not os.path.isdir(res):
        res = directory
    outs = sorted(f for f in os.listdir(res) if f.endswith(".out"))
    pcap = os.path.join(directory, "pcap")
    s = {"dir": directory, "results": len(outs),
         "captures": len(os.listdir(pcap)) if os.path.isdir(pcap) else None,
         "with_flows": 0, "flows": 0, "confidence": collections.Counter(),
         "transport": collections.Counter(),
         "labels": collections.Counter(), "label_files": collections.defaultdict(set)}
    for name in outs:
        n = 0
        with open(os.path.join(res, name), errors="replace") as f:
            for line in f:
                m = FLOW_LINE.match(line)
                if not m:
                    continue
                n += 1
                c = CONFIDENCE.search(line)
                conf = c.group(1) if c else "(none)"
                s["confidence"][conf] += 1
                s["transport"][m.group(1)] += 1
                if conf in LABELLED:
                    lab = label_of(m.group(5))
                    s["labels"][lab] += 1
                    s["label_files"][lab].add(name)
        s["flows"] += n
        s["with_flows"] += n > 0
    return s


def markdown(s, top):
    lab = sum(s["labels"].values())
    out = [f"`{s['dir']}`: {s['captures'] if s['captures'] is not None else '?'} captures, "
           f"{s['results']} result files ({s['with_flows']} with at least one flow), "
           f"{s['flows']} flows; {lab} labelled (confidence DPI or DPI (cache)) "
           f"in {len(s['labels'])} labels.", "",
           "Confidence: " + ", ".join(f"{k} {v}" for k, v in s["confidence"].most_common()) + ".",
           "Transport: " + ", ".join(f"{k} {v}" for k, v in s["transport"].most_common()) + ".", "",
           "| label | flows | captures |", "|---|---:|---:|"]
    items = sorted(s["labels"].items(), key=lambda kv: (-kv[1], kv[0]))
    shown = items if top is None else items[:top]
    for k, v in shown:
        out.append(f"| {k} | {v} | {len(s['label_files'][k])} |")
    rest = items[len(shown):]
    if rest:
        out.append(f"| ({len(rest)} more labels) | {sum(v for _, v in rest)} | |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--top", type=int, default=None, help="show the N largest labels only")
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args()
    total = collections.Counter()
    for d in args.dirs:
        if not os.path.isdir(d):
            sys.exit(f"count-labels: {d}: no such directory")
        s = count(d)
        print(markdown(s, args.top))
        print()
        total.update(s["labels"])
    if len(args.dirs) > 1:
        print(f"All {len(args.dirs)} directories: {sum(total.values())} labelled flows in "
              f"{len(total)} labels; largest: "
              + ", ".join(f"{k} {v}" for k, v in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:15])
              + ".")


if __name__ == "__main__":
    main()

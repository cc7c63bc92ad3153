#!/usr/bin/python3
"""Trains the etcpipe flow classifier on the fetched nDPI captures and exports
it as ONNX with its metadata and a training report. `make model` runs it.

Data: the whole of testdata/ndpi/pcap goes through one `etcpipe features`
call (one process, one dataset whose flows.csv names each flow's capture;
the same extractor `etcpipe classify` uses); each extracted flow is labelled
from nDPI 4.2's expected output for that capture (testdata/ndpi/result/
CAPTURE.out) by matching the bidirectional 5-tuple. The label is nDPI's
application protocol: the last component of "proto: M.A/Master.App" (App when
present, else Master). Flows nDPI calls Unknown, flows without an nDPI line
and 5-tuples nDPI lists twice with different labels are left out.
Classes: labels with at least --min-flows flows in at least --min-files
captures, at most --max-group-share of them in one group of captures that
share 5-tuples (a class nearly all from one place can be learnt or judged,
not both); flows of other labels are dropped (not lumped into "Other": an
"Other" class of 100 unrelated protocols teaches nothing and hides errors).
Split: by capture file, never by flow within a file, and captures that share
a 5-tuple go to the same side (capture_groups). The held-out groups are
chosen so that every class holds about --test-share of its flows out
(stratified_split): among --split-tries shuffles of the groups (fixed seed),
each filled greedily, the one whose per-class held-out shares are nearest to
--test-share, with every class on both sides. A split that is random over
files can put nearly all of a class in one place (before: 290 of 295
SkypeCall flows, all from skype.pcap's group, were held out, so the class
was judged on what 5 training flows taught).
Training rows per (file, class) are capped at --cap-per-file so a
single big capture cannot dominate; the test set is never capped.
Usage: scripts/train.py --etcpipe build/etcpipe --out models/etc_app
"""
import argparse
import csv
import datetime
import functools
import ipaddress
import json
import os
import random
import re
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import etcmodel  # noqa: E402
from etcmodel import PREPROCESS, transform  # noqa: E402
import baselines  # noqa: E402

from ndpi_results import CONFIDENCE, FLOW_LINE, GUESSES, L4, LOOKUP_MASTERS, MASTER_LABELS, stack_of  # noqa: E402


def endpoint(text):
    """'1.2.3.4:80' / '[fe80::1]:53' / '1.2.3.4' → (normalised ip, port)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    return str(ipaddress.ip_address(host)), int(port) if port else 0


@functools.lru_cache(maxsize=None)
def ndpi_flows(path):
    """nDPI's result lines: (key, master, app, confidence) per flow, key =
    (IP protocol number, frozenset of the two endpoints). Read once per file
    (labels and capture groups both use them)."""
    return tuple(_read_ndpi_flows(path))


def _read_ndpi_flows(path):
    with open(path, errors="replace") as f:
        for line in f:
            m = FLOW_LINE.match(line)
            if not m or m.group(1) not in L4:
                continue
            try:
                a, b = endpoint(m.group(2)), endpoint(m.group(4))
            except ValueError:
                continue
            master, app = stack_of(m.group(5))
            c = CONFIDENCE.search(line)
            yield (L4[m.group(1)], frozenset([a, b])), master, app, c.group(1) if c else ""


def ndpi_labels(path, stats=None):
    """5-tuple key → application label, from nDPI's expected output: the last
    component of "proto: M.A/Master.App"; DNS lookups labelled DNS and QUIC
    connections QUIC (ndpi_results); nDPI's port and address guesses and
    5-tuples listed twice with different labels are left out. `stats` (a dict) counts what was left out and why."""
    labels, conflicted = {}, set()
    stats = {} if stats is None else stats
    for key, master, app, confidence in ndpi_flows(path):
        if confidence in GUESSES:
            stats[confidence] = stats.get(confidence, 0) + 1
            continue
        if master in MASTER_LABELS and app != master:
            why = "lookup" if master in LOOKUP_MASTERS else "service"
            stats[f"{why} relabelled {master}"] = stats.get(f"{why} relabelled {master}", 0) + 1
            app = master
        if key in labels and labels[key] != app:
            conflicted.add(key)
        labels[key] = app
    for k in conflicted:
        stats["conflicting labels"] = stats.get("conflicting labels", 0) + 1
        del labels[k]
    return labels


def capture_groups(args, names):
    """Captures that share a 5-tuple (the same host and ports, e.g. skype.pcap
    and skype_no_unknown.pcap) → one group, so a split keeps them on one side.
    5-tuples with an unspecified address (DHCP discover 0.0.0.0:68 →
    255.255.255.255:67, MLD from ::) are the same on every host and link
    nothing. Returns {capture name: group name}, the group named by its first
    capture in sort order."""
    parent = {n: n for n in names}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    owner = {}
    for n in sorted(names):
        res = result_path(args, n)
        if not os.path.exists(res):
            continue
        for key, _, _, _ in ndpi_flows(res):
            if any(ipaddress.ip_address(ip).is_unspecified for ip, _ in key[1]):
                continue
            first = owner.setdefault(key, n)
            if first != n:
                ra, rb = find(first), find(n)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    return {n: find(n) for n in names}


def sources(args):
    """The capture sources: [(name, pcap dir, result dir)]. ndpi is nDPI's
    own captures and results (--pcaps, --results); the others are the
    sources scripts/fetch-extra-captures.sh fetched and labelled with
    Debian's ndpiReader (--extra/NAME/{pcap,result}, complete ones only).
    --sources auto: all of them; else a comma-separated list of names."""
    found = [("ndpi", args.pcaps, args.results)]
    if os.path.isdir(args.extra):
        for name in sorted(os.listdir(args.extra)):
            d = os.path.join(args.extra, name)
            if os.path.exists(os.path.join(d, ".complete")) and os.path.isdir(os.path.join(d, "pcap")):
                found.append((name, os.path.join(d, "pcap"), os.path.join(d, "result")))
    if args.sources == "auto":
        return found
    want = args.sources.split(",")
    missing = [w for w in want if w not in {n for n, _, _ in found}]
    if missing:
        sys.exit(f"train: source(s) {', '.join(missing)} not found (fetched: "
                 f"{', '.join(n for n, _, _ in found)}; `make extra-testdata` fetches the others)")
    return [s_ for s_ in found if s_[0] in want]


def capture_name(source, path):
    """nDPI's captures keep their file name; the others are SOURCE/FILE."""
    base = os.path.basename(path)
    return base if source == "ndpi" else f"{source}/{base}"


def source_of(name):
    return name.split("/", 1)[0] if "/" in name else "ndpi"


def result_path(args, name):
    if "/" in name:
        src, base = name.split("/", 1)
        return os.path.join(args.extra, src, "result", base + ".out")
    return os.path.join(args.results, name + ".out")


def extract_all(etcpipe, pcaps, spec, out_dir):
    """Runs `etcpipe features` once over the capture directories (one
    process, one dataset; cached) and returns the flows.csv rows, the arrays
    by feature kind, and the captures that failed (path, reason)."""
    pcaps = [pcaps] if isinstance(pcaps, str) else list(pcaps)
    done = os.path.join(out_dir, ".done")
    failed_path = os.path.join(out_dir, "failed.json")
    if not os.path.exists(done):
        os.makedirs(out_dir, exist_ok=True)
        r = subprocess.run([etcpipe, "features", *pcaps, "-o", out_dir, "--features", spec,
                            "--device", "cpu", "-q"], capture_output=True, text=True)
        # 0: all read; 4/5: some captures failed (each named on stderr), the rest are in.
        failed = []
        for line in r.stderr.splitlines():
            m = re.match(r"^error: (.+?): (read capture|open capture): (.*)$", line)
            if m:
                failed.append((m.group(1), m.group(3)))
        if r.returncode not in (0, 4, 5) or not os.path.exists(os.path.join(out_dir, "flows.csv")):
            sys.exit(f"train: etcpipe features failed (exit {r.returncode}): {r.stderr.strip()}")
        json.dump(failed, open(failed_path, "w"))
        open(done, "w").close()
    flows = list(csv.DictReader(open(os.path.join(out_dir, "flows.csv"))))
    arrays = {k: np.load(os.path.join(out_dir, fn), mmap_mode="r") for k, fn in feature_files(spec)}
    return flows, arrays, [tuple(f) for f in json.load(open(failed_path))]


def feature_files(spec):
    parts = []
    for p in spec.split(","):
        kind, shape = p.split(":")
        parts.append((kind, f"{kind}_{shape}.npy"))
    return parts


def split_files(files_of_class, flows_per_file, seed, test_share):
    rng = random.Random(seed)
    files = sorted(flows_per_file)
    rng.shuffle(files)
    test = set()
    for cls in sorted(files_of_class, key=lambda c: (len(files_of_class[c]), c)):
        fs = files_of_class[cls]
        if fs & test:
            continue
        for f in [f for f in files if f in fs]:
            # keep every class trainable: never move a class's last train file
            if all(len(files_of_class[c] - test - {f}) > 0 for c in files_of_class
                   if f in files_of_class[c]):
                test.add(f)
                break
    total = sum(flows_per_file.values())
    for f in files:
        if sum(flows_per_file[t] for t in test) >= test_share * total:
            break
        if f in test:
            continue
        if all(len(files_of_class[c] - test - {f}) > 0 for c in files_of_class
               if f in files_of_class[c]):
            test.add(f)
    return sorted(set(files) - test), sorted(test)


def split_groups(files_of_class, flows_per_file, group_of, seed, share):
    """split_files over groups of captures (capture_groups): a group goes
    whole to one side. Returns (kept files, held-out files)."""
    members = {}
    for f in flows_per_file:
        members.setdefault(group_of.get(f, f), set()).add(f)
    g_of_class = {c: {group_of.get(f, f) for f in fs} for c, fs in files_of_class.items()}
    flows_per_group = {g: sum(flows_per_file[f] for f in fs) for g, fs in members.items()}
    keep, held = split_files(g_of_class, flows_per_group, seed, share)
    expand = lambda gs: sorted(f for g in gs for f in members[g])  # noqa: E731
    return expand(keep), expand(held)


def confusion_svg(cm, classes, title):
    n = len(classes)
    cell, left, top = 34, 130, 150
    w, h = left + n * cell + 20, top + n * cell + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="13">{title}</text>',
           f'<text x="{left}" y="{h - 12}">predicted →  (rows: true class; '
           f'cell: flows, shade: share of the row)</text>']
    for i, c in enumerate(classes):
        y = top + i * cell + cell / 2 + 4
        out.append(f'<text x="{left - 6}" y="{y}" text-anchor="end">{c}</text>')
        x = left + i * cell + cell / 2
        out.append(f'<text x="{x}" y="{top - 6}" transform="rotate(-60 {x} {top - 6})">{c}</text>')
    for i in range(n):
        row = sum(cm[i]) or 1
        for j in range(n):
            share = cm[i][j] / row
            shade = int(255 - 200 * share)
            fill = f"rgb({shade},{shade},255)" if i == j else f"rgb(255,{shade},{shade})"
            if cm[i][j] == 0:
                fill = "rgb(248,248,248)"
            x, y = left + j * cell, top + i * cell
            out.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" '
                       f'stroke="#ccc"/>')
            if cm[i][j]:
                out.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" '
                           f'text-anchor="middle">{cm[i][j]}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def stratified_split(class_flows_of_group, share, seed, tries):
    """Held-out groups such that each class keeps about `share` of its flows
    out. class_flows_of_group: {group: {class: flows}}. Each try shuffles the
    groups (seeded) and adds a group to the held-out side when that brings
    the per-class held-out shares, and the share of groups, nearer to
    `share` (sums of squared differences); the best try that leaves every class on both sides wins.
    Returns (cost, held-out groups); (None, None) when no try qualifies."""
    groups = sorted(class_flows_of_group)
    total = {}
    for g in groups:
        for c, n in class_flows_of_group[g].items():
            total[c] = total.get(c, 0) + n
    classes = sorted(total)

    def cost(held):
        # the groups' own share counts as much as all classes together: held-out
        # shares are easy to meet with many one-flow captures, which would
        # leave training with few captures
        by_class = sum((held.get(c, 0) / total[c] - share) ** 2 for c in classes)
        return by_class + len(classes) * (held.get(None, 0) / len(groups) - share) ** 2

    rng = random.Random(seed)
    best_cost, best = None, None
    for _ in range(tries):
        order = groups[:]
        rng.shuffle(order)
        held, chosen, now = {}, set(), cost({})
        for g in order:
            trial = dict(held)
            for c, n in class_flows_of_group[g].items():
                trial[c] = trial.get(c, 0) + n
            trial[None] = trial.get(None, 0) + 1
            c_trial = cost(trial)
            if c_trial < now:
                held, now = trial, c_trial
                chosen.add(g)
        both_sides = all(0 < held.get(c, 0) < total[c] for c in classes)
        if both_sides and (best_cost is None or now < best_cost):
            best_cost, best = now, chosen
    return best_cost, best


def labelled_flows(args, kinds, label_stats=None):
    """The flows of the captures with their nDPI labels: (rows, unlabelled,
    unknown, failed, pcaps), rows = [(capture name, label, {kind: array row})].
    `label_stats` (a dict) counts the nDPI lines left out or relabelled."""
    rows = []  # (file, label, {kind: array row})
    unlabelled, unknown = 0, 0
    srcs = sources(args)
    source_of_dir = {os.path.normpath(d): n for n, d, _ in srcs}
    pcaps = [capture_name(n, p) for n, d, _ in srcs for p in sorted(os.listdir(d))
             if p.endswith((".pcap", ".pcapng", ".cap"))]
    tag = args.spec.replace(":", "_").replace(",", "-") + "".join(
        "+" + n for n, _, _ in srcs if n != "ndpi")
    flows, arrays, failed_paths = extract_all(args.etcpipe, [d for _, d, _ in srcs], args.spec,
                                              os.path.join(args.work, tag))

    def name_of(path):
        return capture_name(source_of_dir.get(os.path.normpath(os.path.dirname(path)), "ndpi"), path)

    failed = [(name_of(p), e) for p, e in failed_paths]
    labels_of = {}
    failed_names = {f for f, _ in failed}
    for i, fl in enumerate(flows):
        name = name_of(fl["capture"])
        res = result_path(args, name)
        # A capture that failed part-way is left out whole, as nDPI's result
        # for it describes the whole file.
        if not os.path.exists(res) or name in failed_names:
            continue
        if name not in labels_of:
            labels_of[name] = ndpi_labels(res, label_stats)
        labels = labels_of[name]
        try:
            a = (str(ipaddress.ip_address(fl["src"])), int(fl["sport"]))
            b = (str(ipaddress.ip_address(fl["dst"])), int(fl["dport"]))
        except ValueError:
            continue
        lab = labels.get((int(fl["proto"]), frozenset([a, b])))
        if lab is None:
            unlabelled += 1
            continue
        if lab == "Unknown":
            unknown += 1
            continue
        x = {k: np.asarray(arrays[k][i]) for k, _ in kinds}
        x["_flow"] = (int(fl["proto"]), int(fl["sport"]), int(fl["dport"]))
        rows.append((name, lab, x))
    return rows, unlabelled, unknown, failed, pcaps


def classes_and_split(args, rows, notes=None):
    """The classes kept and the split by capture file, captures sharing
    5-tuples kept together: (rows of the kept classes, classes, dropped,
    cidx, per_label, files_of, flows_per_file, train_files, test_files,
    test_set, group_of). `notes` (a dict) gets "one_place": {class: share
    of its flows in its largest group} for the classes only the group rule
    drops."""
    per_label, files_of = {}, {}
    for f, lab, _ in rows:
        per_label[lab] = per_label.get(lab, 0) + 1
        files_of.setdefault(lab, set()).add(f)
    # groups over every labelled capture: one whose classes are all dropped
    # can still link two that are kept
    group_of = capture_groups(args, sorted({f for f, _, _ in rows}))
    per_label_group = {}
    for f, lab, _ in rows:
        g = per_label_group.setdefault(lab, {})
        g[group_of[f]] = g.get(group_of[f], 0) + 1
    largest_share = {c: max(per_label_group[c].values()) / per_label[c] for c in per_label}
    classes = sorted(c for c in per_label
                     if per_label[c] >= args.min_flows and len(files_of[c]) >= args.min_files
                     and largest_share[c] <= args.max_group_share)
    dropped = sorted((c for c in per_label if c not in classes), key=lambda c: -per_label[c])
    if notes is not None:
        notes["one_place"] = {c: largest_share[c] for c in dropped
                              if per_label[c] >= args.min_flows and len(files_of[c]) >= args.min_files}
    rows = [r for r in rows if r[1] in classes]
    cidx = {c: i for i, c in enumerate(classes)}
    flows_per_file = {}
    for f, _, _ in rows:
        flows_per_file[f] = flows_per_file.get(f, 0) + 1
    group_of = {f: group_of[f] for f in flows_per_file}
    class_flows_of_group = {}
    for f, lab, _ in rows:
        g = class_flows_of_group.setdefault(group_of.get(f, f), {})
        g[lab] = g.get(lab, 0) + 1
    _, held_groups = stratified_split(class_flows_of_group, args.test_share, args.seed,
                                      args.split_tries)
    if held_groups is None:
        sys.exit(f"train: no split in {args.split_tries} tries leaves every class on both sides "
                 f"(a class whose flows all come from one group of captures cannot be judged)")
    test_files = sorted(f for f in flows_per_file if group_of.get(f, f) in held_groups)
    train_files = sorted(f for f in flows_per_file if group_of.get(f, f) not in held_groups)
    test_set = set(test_files)
    return (rows, classes, dropped, cidx, per_label, files_of, flows_per_file,
            train_files, test_files, test_set, group_of)


def validation_split(args, classes, files_of, flows_per_file, test_set, group_of=None):
    """The training files split again by file (groups of captures kept
    together): (fit files, validation files)."""
    return split_groups({c: files_of[c] - test_set for c in classes},
                        {f: n for f, n in flows_per_file.items() if f not in test_set},
                        group_of or {}, args.seed + 1, args.val_share)


def cv_folds(train_files, flows_per_file, group_of, k, seed):
    """The training files in k folds by group of captures (capture_groups),
    each fold about the same number of (capped) flows: groups, shuffled with
    the seed, go largest first to the fold with the fewest flows. Returns
    [(fit files, validation files)] for each fold."""
    groups = {}
    for f in train_files:
        groups.setdefault(group_of.get(f, f), []).append(f)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    names.sort(key=lambda g: -sum(flows_per_file.get(f, 0) for f in groups[g]))
    folds, load = [[] for _ in range(k)], [0] * k
    for g in names:
        i = min(range(k), key=lambda j: (load[j], j))
        folds[i] += groups[g]
        load[i] += sum(flows_per_file.get(f, 0) for f in groups[g])
    return [(sorted(f for j in range(k) if j != i for f in folds[j]), sorted(folds[i]))
            for i in range(k)]


def build_parser():
    """The command line (scripts/train_pkttag.py reads its data defaults from it)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--etcpipe", default="build/etcpipe")
    ap.add_argument("--pcaps", default="testdata/ndpi/pcap")
    ap.add_argument("--results", default="testdata/ndpi/result")
    ap.add_argument("--extra", default="testdata/extra",
                    help="the sources scripts/fetch-extra-captures.sh fetched (make extra-testdata)")
    ap.add_argument("--sources", default="auto",
                    help="ndpi plus every fetched extra source (auto), or a comma-separated list "
                         "of source names, e.g. ndpi")
    ap.add_argument("--spec", default="payload:10x256,sizes:10,iat:10,port:1",
                    help="what is extracted; each candidate model reads a slice of it")
    ap.add_argument("--work", default="build/train")
    ap.add_argument("--out", default="models/etc_app", help="path prefix of .onnx/.pt/.md/.svg")
    ap.add_argument("--min-flows", type=int, default=30)
    ap.add_argument("--min-files", type=int, default=3)
    ap.add_argument("--max-group-share", type=float, default=0.9,
                    help="a class is kept only when its largest group of captures (capture_groups) "
                         "holds at most this share of its flows: whichever side of the split gets "
                         "that group, the other would hold a handful of flows")
    ap.add_argument("--cap-per-file", type=int, default=150)
    ap.add_argument("--test-share", type=float, default=0.25,
                    help="share of every class's flows the held-out captures should hold")
    ap.add_argument("--split-tries", type=int, default=2000,
                    help="shuffles of the capture groups the stratified split chooses from")
    ap.add_argument("--epochs", type=int, default=60, help="most epochs a candidate trains")
    ap.add_argument("--val-share", type=float, default=0.25,
                    help="share of the training files held back to choose the settings")
    ap.add_argument("--folds", type=int, default=4,
                    help="cross-validation folds over the training files that choose the model "
                         "and every baseline's settings")
    ap.add_argument("--ensemble", type=int, default=5,
                    help="members of the shipped model (the chosen candidate from different "
                         "initialisations; their logits are averaged)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--data-only", action="store_true",
                    help="extract and label, print the counts per class, do not train")
    return ap


def main():
    args = build_parser().parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    t_start = time.time()

    kinds = feature_files(args.spec)
    H = int(args.spec.split("payload:")[1].split("x")[0])
    L = int(args.spec.split("payload:")[1].split("x")[1].split(",")[0])
    assert [k for k, _ in kinds] == ["payload", "sizes", "iat", "port"], \
        "spec must be payload:HxL,sizes:H,iat:H,port:1 (the candidates read slices of it)"

    # ---- features (one `etcpipe features` over the directory) + labels ----
    label_stats = {}
    rows, unlabelled, unknown, failed, pcaps = labelled_flows(args, kinds, label_stats)
    print(f"train: {len(rows)} labelled flows from {len(pcaps)} captures "
          f"({unlabelled} without an nDPI match, {unknown} Unknown, {len(failed)} captures failed); "
          f"nDPI lines: " + ", ".join(f"{k} {v}" for k, v in sorted(label_stats.items())))
    if args.data_only:
        per = {}
        for f, lab, _ in rows:
            per[lab] = per.get(lab, 0) + 1
        for lab, n in sorted(per.items(), key=lambda kv: -kv[1]):
            print(f"  {lab:24} {n}")
        return

    # ---- classes ----
    split_notes = {}
    (rows, classes, dropped, cidx, per_label, files_of, flows_per_file,
     train_files, test_files, test_set, group_of) = classes_and_split(args, rows, split_notes)

    # ---- arrays ----
    def spec_of(cand):
        """The feature spec a candidate model reads (a slice of --spec)."""
        if cand["family"] == "etcnet":
            parts = [f"payload:{H}x{L}"]
        else:
            parts = [f"payload:{cand['p']}x{cand['b']}"]
        parts += [f"sizes:{H}", f"iat:{H}"] + (["port:1"] if cand.get("ports") else [])
        return ",".join(parts)

    def stack(sel, cand):
        spec = spec_of(cand)
        inputs = []
        for part in spec.split(","):
            kind, shape = part.split(":")
            raw = np.stack([r[2][kind] for r in sel])
            if kind == "payload":
                ph, pl = (int(v) for v in shape.split("x"))
                raw = raw[:, :ph, :pl]
            elif kind == "port":
                raw = raw[:, :1]
            inputs.append(torch.from_numpy(transform(kind, np.ascontiguousarray(raw))))
        y = torch.tensor([cidx[r[1]] for r in sel], dtype=torch.long)
        return inputs, y

    def capped(file_set):
        out, seen = [], {}
        rng = random.Random(args.seed)
        shuffled = [r for r in rows if r[0] in file_set]
        rng.shuffle(shuffled)
        for r in shuffled:
            key = (r[0], r[1])
            seen[key] = seen.get(key, 0) + 1
            if seen[key] <= args.cap_per_file:
                out.append(r)
        return out

    def port_vocab(sel, min_files=2):
        """Port codes seen in at least `min_files` of the rows' capture files,
        most frequent first, at most 128 (with 2: a port only one capture
        uses is that capture's, not its class's)."""
        files_of_code, n = {}, {}
        for r in sel:
            code = int(r[2]["port"][0])
            files_of_code.setdefault(code, set()).add(r[0])
            n[code] = n.get(code, 0) + 1
        keep = [c for c in files_of_code if len(files_of_code[c]) >= min_files]
        return sorted(sorted(keep, key=lambda c: (-n[c], c))[:128])

    train_rows = capped(set(train_files))
    test_rows = [r for r in rows if r[0] in test_set]
    count = lambda sel, c: sum(1 for r in sel if r[1] == c)  # noqa: E731

    def evaluate(model, x, y):
        model.eval()
        with torch.no_grad():
            pred = model(*x).argmax(1) if len(y) else torch.tensor([], dtype=torch.long)
        cm = [[0] * len(classes) for _ in classes]
        for t, p in zip(y.tolist(), pred.tolist()):
            cm[t][p] += 1
        return cm

    def make_model(cand, sel):
        if cand["family"] == "etcnet":
            ck = {"family": "etcnet", "h": H, "l": L, "dropout": cand["dropout"]}
        else:
            ck = {"family": "bytecnn", "args": {
                "p": cand["p"], "b": cand["b"], "h": H, "dropout": cand["dropout"],
                "port_vocab": port_vocab(sel, cand.get("port_files", 2)) if cand.get("ports") else None,
                "wide": cand.get("wide", False)}}
        ck["classes"] = classes
        return etcmodel.build(ck), ck

    def set_port_prior(model, port, y, alpha, scale, fallback_scale=None):
        """The wide path as a fixed port prior, the port rule in logit form:
        scale * log p(class | code) for a code in the vocabulary, scale * log
        p(class | protocol) for an unseen TCP / UDP port (the rule's
        fallback), from the training rows' counts with add-alpha smoothing,
        centred per row. Not trained. A TCP / UDP code in the vocabulary
        lights its protocol's indicator too, so its row holds the difference.
        The deep part learns what the bytes add where a port names no single
        class. `fallback_scale` (default: `scale`) weighs the protocol
        fallback on its own: a port never seen in training is weak evidence
        (QUIC on UDP 4433 is not DNS because most unnamed UDP is), and a weak
        fallback lets the bytes decide there."""
        fallback_scale = scale if fallback_scale is None else fallback_scale
        k = len(classes)
        vocab = model.port.vocab
        with torch.no_grad():
            code = port[:, 0].long()
            row = model.port(port)[:, :len(vocab)].argmax(1)
            known = model.port(port)[:, :len(vocab)].max(1).values > 0.5
            counts = torch.zeros(model.port.width, k)
            counts.index_put_((row[known], y[known]), torch.ones(int(known.sum())), accumulate=True)
            for j, proto in enumerate((6, 17)):  # the TCP and UDP indicator rows
                counts[len(vocab) + j] = torch.bincount(y[(code >> 16) == proto], minlength=k).float()
            logp = torch.log((counts + alpha) / (counts.sum(1, keepdim=True) + alpha * k))
            logp = logp - logp.mean(1, keepdim=True)
            weight = scale * logp
            weight[len(vocab):] = fallback_scale * logp[len(vocab):]
            for i, v in enumerate(vocab):
                if v >> 16 in (6, 17):
                    weight[i] -= weight[len(vocab) + (0 if v >> 16 == 6 else 1)]
            model.wide.weight.copy_(weight.t())
        model.wide.weight.requires_grad_(False)

    def unseen_code(model, port):
        """Per row, a port code of the row's protocol that is not in the
        model's port vocabulary (the first free one from port 0 up), or -1
        where the protocol has no fallback (not TCP / UDP)."""
        vocab = set(model.port.vocab)
        free = {}
        for proto in (6, 17):
            c = proto << 16
            while c in vocab:
                c += 1
            free[proto] = float(c)
        proto = (port[:, 0].long() >> 16).tolist()
        return torch.tensor([free.get(p, -1.0) for p in proto], dtype=port.dtype)

    def fit(cand, sel, epochs, val=None, seed=None):
        """Trains a fresh model on the rows `sel`; with `val` (rows), returns
        the validation macro-F1 (over the classes the rows hold) after every
        5th epoch too."""
        torch.manual_seed(args.seed if seed is None else seed)
        x, y = stack(sel, cand)
        model, ck = make_model(cand, sel)
        if cand.get("prior"):
            set_port_prior(model, x[-1], y, cand["prior"], cand.get("prior_scale", 1.0),
                           cand.get("fallback_scale"))
        unseen = unseen_code(model, x[-1]) if cand.get("unseen_share") else None
        vx = stack(val, cand) if val is not None else None
        freq = torch.bincount(y, minlength=len(classes)).float()
        weight = (freq.sum() / (len(classes) * freq.clamp(min=1))) ** cand["balance"]
        loss_fn = nn.CrossEntropyLoss(weight=weight)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3,
                               weight_decay=cand["wd"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
        n, curve = len(y), []
        batch = 128 if cand["family"] == "etcnet" else 64
        for epoch in range(epochs):
            model.train()
            perm = torch.randperm(n)
            total = 0.0
            for s0 in range(0, n, batch):
                idx = perm[s0:s0 + batch]
                if len(idx) < 2:
                    continue
                opt.zero_grad()
                batch_x = [t[idx] for t in x]
                if unseen is not None:
                    # a share of the TCP / UDP rows as if their port were new
                    hide = (torch.rand(len(idx)) < cand["unseen_share"]) & (unseen[idx] >= 0)
                    batch_x[-1] = torch.where(hide[:, None], unseen[idx][:, None], batch_x[-1])
                loss = loss_fn(model.logits(*batch_x), y[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            sched.step()
            if vx is not None and epoch % 5 == 4:
                model.eval()
                with torch.no_grad():
                    pv = model(*vx[0]).argmax(1).numpy()
                curve.append((epoch + 1, baselines.macro_f1(vx[1].numpy(), pv, len(classes),
                                                             present_only=True)[0]))
        print(f"  {describe(cand)}, {epochs} epochs: loss {total / n:.4f}"
              + (f", validation macro-F1 by epoch {[(e, round(f, 3)) for e, f in curve]}" if curve else ""),
              flush=True)
        return model, ck, curve

    def describe(cand):
        if cand["family"] == "etcnet":
            head = f"EtcNet payload:{H}x{L}"
        else:
            head = f"ByteCnn payload:{cand['p']}x{cand['b']}" + (" + port" if cand.get("ports") else "") \
                + (" (wide)" if cand.get("wide") and not cand.get("prior") else "") \
                + (f" (fixed port prior x{cand.get('prior_scale', 1.0):g}, ports of "
                   f"≥{cand.get('port_files', 2)} captures)" if cand.get("prior") else "") \
                + (f", fallback x{cand['fallback_scale']:g}" if cand.get("fallback_scale") is not None else "") \
                + (f", {cand['unseen_share']:g} of rows shown with an unseen port"
                   if cand.get("unseen_share") else "")
        return (f"{head}, weight decay {cand['wd']:g}, dropout {cand['dropout']:g}, "
                f"class weights ^{cand['balance']:g}")

    # ---- model and settings chosen by cross-validation over the training files ----
    # The held-out files are never looked at here. Folds are groups of training
    # captures; a candidate's score at an epoch is its mean validation macro-F1
    # over the folds. The cosine schedule depends on the epoch count, so the
    # best epoch is retrained as its own schedule.
    per_file_class = {}
    for r in rows:
        per_file_class[(r[0], r[1])] = per_file_class.get((r[0], r[1]), 0) + 1
    capped_per_file = {}
    for (f, _), n in per_file_class.items():
        capped_per_file[f] = capped_per_file.get(f, 0) + min(n, args.cap_per_file)
    folds = cv_folds(train_files, capped_per_file, group_of, args.folds, args.seed + 1)
    fold_rows = [(capped(set(fi)), capped(set(va))) for fi, va in folds]
    prior = {"family": "bytecnn", "ports": True, "wide": True, "prior": 1.0, "port_files": 1,
             "wd": 1e-3, "dropout": 0.5, "balance": 1.0}
    candidates = [
        # the model shipped two rounds ago (EtcNet, payload:10x256)
        {"family": "etcnet", "wd": 1e-4, "dropout": 0.0, "balance": 0.5},
        {"family": "bytecnn", "p": 3, "b": 64, "ports": False, "wd": 1e-3, "dropout": 0.3, "balance": 1.0},
        # the model shipped before this one: a trained wide path over the port one-hot
        {"family": "bytecnn", "p": 3, "b": 128, "ports": True, "wide": True, "wd": 1e-3, "dropout": 0.3,
         "balance": 1.0},
        # the wide path fixed to the port rule's log-probabilities (set_port_prior), at three weights
        {**prior, "p": 3, "b": 128, "prior_scale": 3.0},
        {**prior, "p": 3, "b": 128, "prior_scale": 6.0},
        {**prior, "p": 3, "b": 128, "prior_scale": 10.0},
        # fewer packets, more of each: a TLS ClientHello's server name often lies past byte 128
        {**prior, "p": 2, "b": 256, "prior_scale": 6.0},
        # a weak protocol fallback for ports never seen in training, and training rows shown
        # now and then as if their port were new, so the bytes learn to name a class alone
        {**prior, "p": 2, "b": 256, "prior_scale": 6.0, "fallback_scale": 1.0, "unseen_share": 0.2},
        {**prior, "p": 2, "b": 256, "prior_scale": 6.0, "fallback_scale": 1.0, "unseen_share": 0.4},
    ]
    print(f"choosing the model: {args.folds}-fold cross-validation over the {len(train_files)} "
          f"training files (validation files per fold: {[len(v) for _, v in folds]})")
    trials = []
    for cand in candidates:
        curves = [fit(cand, fi, args.epochs, val=va)[2] for fi, va in fold_rows]
        mean = [(curves[0][i][0], float(np.mean([c[i][1] for c in curves])))
                for i in range(len(curves[0]))]
        best_epoch, best_f1 = max(mean, key=lambda t: (t[1], -t[0]))
        trials.append((best_f1, best_epoch, cand))
        print(f"  -> {describe(cand)}: mean validation macro-F1 {best_f1:.3f} at epoch {best_epoch}",
              flush=True)
    val_f1, epochs, chosen = max(trials, key=lambda t: t[0])
    print(f"chosen: {describe(chosen)}, {epochs} epochs (mean validation macro-F1 {val_f1:.4f}); "
          f"{args.ensemble} members trained on all {len(train_files)} training files")

    # ---- the shipped model: all training files, the chosen settings, K initialisations ----
    members, member_cks = [], []
    for i in range(args.ensemble):
        m, mck, _ = fit(chosen, train_rows, epochs, seed=args.seed + i)
        members.append(m)
        member_cks.append({k: v for k, v in mck.items() if k != "classes"})
    if len(members) == 1:
        model, ck = members[0], {**member_cks[0], "classes": classes}
    else:
        model = etcmodel.Ensemble(members)
        model.scale_last_layers()
        ck = {"family": "ensemble", "members": member_cks, "classes": classes}
    model.eval()
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model_spec = spec_of(chosen)
    (xtr, ytr), (xte, yte) = stack(train_rows, chosen), stack(test_rows, chosen)

    # ---- baselines: same classes, split, capped rows, held-out flows ----
    print("baselines (settings chosen by the same cross-validation):")

    def tree_data(sel):
        return ({k: np.stack([r[2][k] for r in sel]) for k, _ in kinds},
                [r[2]["_flow"] for r in sel], np.array([cidx[r[1]] for r in sel], np.int64))

    data = {"folds": [(tree_data(fi), tree_data(va)) for fi, va in fold_rows],
            "train": tree_data(train_rows), "test": tree_data(test_rows)}
    base = baselines.run_all(data, len(classes), args.seed)
    yte_np = yte.numpy()
    base_scores = [(name, desc, pred, *baselines.macro_f1(yte_np, pred, len(classes)))
                   for name, desc, pred in base]
    for name, _, pred, f1, _ in base_scores:
        print(f"  {name}: held-out accuracy {(pred == yte_np).mean():.4f}, macro-F1 {f1:.4f}")

    # ---- evaluation on the held-out files ----
    cm = evaluate(model, xte, yte)
    with torch.no_grad():
        prob_te = model(*xte).numpy() if len(yte) else np.zeros((0, len(classes)))
    pred_te = prob_te.argmax(1)
    best_base = max(base_scores, key=lambda b: b[3])
    test_file_of = [r[0] for r in test_rows]
    lo, hi, ahead = baselines.bootstrap_diff(test_file_of, yte_np, pred_te, best_base[2],
                                             len(classes), seed=args.seed)
    with torch.no_grad():
        pred_tr = model(*xtr).argmax(1)
    acc = sum(cm[i][i] for i in range(len(classes))) / max(1, len(yte))
    mf1, f1s = baselines.macro_f1_cm(cm)
    train_acc = (pred_tr == ytr).float().mean().item()
    print(f"held-out files: accuracy {acc:.4f}, macro-F1 {mf1:.4f} on {len(yte)} flows "
          f"(train accuracy {train_acc:.4f}); against the best baseline ({best_base[0]}, "
          f"{best_base[3]:.4f}): 95 % interval of the macro-F1 difference over held-out files "
          f"[{lo:+.3f}, {hi:+.3f}], ahead in {100 * ahead:.1f} % of 1000 draws")

    # ---- export ----
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    torch.save({**ck, "state_dict": model.state_dict(), "spec": model_spec}, args.out + ".pt")
    names = [fn[:-4] for _, fn in feature_files(model_spec)]
    dummy = tuple(x[:2] for x in xtr)
    torch.onnx.export(model, dummy, args.out + ".onnx", input_names=names,
                      output_names=["probabilities"], opset_version=13,
                      dynamic_axes={**{nm: {0: "batch"} for nm in names}, "probabilities": {0: "batch"}})
    import onnx
    m = onnx.load(args.out + ".onnx")
    meta = {"etcpipe.features": model_spec, "etcpipe.classes": json.dumps(classes),
            "etcpipe.preprocess": PREPROCESS, "etcpipe.task": "application (nDPI 4.2 labels)"}
    del m.metadata_props[:]
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    m.producer_name = "etcpipe scripts/train.py"
    onnx.checker.check_model(m)
    onnx.save(m, args.out + ".onnx")
    ops = sorted({nd.op_type for nd in m.graph.node})

    title = f"held-out files: accuracy {acc:.3f}, macro-F1 {mf1:.3f} ({len(yte)} flows)"
    with open(args.out + ".confusion.svg", "w") as f:
        f.write(confusion_svg(cm, classes, title))

    # ---- report ----
    groups = {}
    for f in sorted(set(train_files) | set(test_files)):
        groups.setdefault(group_of.get(f, f), []).append(f)
    groups_listed = [g for g in groups.values() if len(g) > 1]
    base = os.path.basename(args.out)
    lines = [f"# Training report: `{base}.onnx`", "",
             f"Produced by `make model` (scripts/train.py) on "
             f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
             f"torch {torch.__version__}, {args.threads} threads, {time.time() - t_start:.0f} s.", "",
             f"- Features: `{model_spec}` from `etcpipe features` (input transform `{PREPROCESS}`); "
             f"the candidates read slices of one extraction with `{args.spec}`.",
             f"- Labels: nDPI 4.2 expected output, application protocol; classes with ≥{args.min_flows} "
             f"flows in ≥{args.min_files} captures and at most {args.max_group_share:g} of them in one "
             f"group of captures that share 5-tuples; other labels dropped. Left out by the group rule "
             f"alone (share in the largest group): "
             + (", ".join(f"{c} ({v:.2f})" for c, v in sorted(split_notes["one_place"].items())) or "none")
             + ": whichever side of a split by capture gets that group, the other holds a handful "
             "of the class's flows, so the class can be learnt or judged, not both.",
             f"- Model: {describe(chosen)} (scripts/etcmodel.py), {n_params} trained parameters, "
             f"ONNX opset 13, ops: {', '.join(ops)}.",
             f"- Split by capture file, stratified by class (seed {args.seed}, the best of "
             f"{args.split_tries} shuffles of the capture groups: per-class held-out shares nearest "
             f"to {args.test_share:g}, every class on both sides): {len(train_files)} training files, "
             f"{len(test_files)} held-out files; training rows capped at {args.cap_per_file} per "
             f"(file, class). Captures that share a 5-tuple stay on one side (groups: "
             + ("; ".join(" + ".join(g) for g in groups_listed) or "none") + ").",
             "- Labels left out or changed (nDPI result lines): "
             + ", ".join(f"{k} {v}" for k, v in sorted(label_stats.items()))
             + ". Port and address guesses (`Match by port`, `Match by IP`) are not labels the "
             "bytes support; a DNS exchange is labelled DNS whatever name it looks up; a QUIC "
             "connection is labelled QUIC whatever service it reaches (nDPI reads the service "
             "from the SNI by decrypting the Initial packet; the bytes the model gets hold that "
             "ClientHello encrypted).",
             f"- Model and settings chosen without the held-out files: {args.folds}-fold "
             f"cross-validation over the training files (folds are groups of captures, "
             f"{[len(v) for _, v in folds]} validation files); each candidate trained up to "
             f"{args.epochs} epochs and was scored by its mean validation macro-F1 (over the classes "
             f"each fold holds) every 5 epochs (table below). Chosen: {describe(chosen)}, {epochs} "
             f"epochs; the shipped model averages the logits of {args.ensemble} such models trained "
             f"on all training files from different initialisations.",
             "- Sources (labelled flows of the kept classes, training / held-out): "
             + "; ".join(f"{n} {sum(1 for r in rows if source_of(r[0]) == n and r[0] not in test_set)} / "
                         f"{sum(1 for r in rows if source_of(r[0]) == n and r[0] in test_set)}"
                         for n, _, _ in sources(args))
             + " (ndpi: nDPI 4.2's captures and expected results; the others: Debian source "
             "packages' captures labelled by Debian's ndpiReader, testdata/PROVENANCE.md).",
             f"- Data: {len(rows)} labelled flows of the kept classes ({unlabelled} extracted flows had "
             f"no nDPI line, {unknown} were Unknown); captures that failed to extract: "
             + (", ".join(f"{n} ({e})" for n, e in failed) or "none") + ".",
             "", "## Held-out result", "",
             f"**Accuracy {acc:.4f}, macro-F1 {mf1:.4f}** on {len(yte)} flows from held-out files "
             f"(training accuracy {train_acc:.4f}, {epochs} epochs).", "",
             f"![confusion matrix]({base}.confusion.svg)", "",
             "| class | train flows (used) | test flows | test F1 | files |", "|---|---|---|---|---|"]
    for i, c in enumerate(classes):
        lines.append(f"| {c} | {count(train_rows, c)} | {count(test_rows, c)} | {f1s[i]:.3f} | "
                     f"{len(files_of[c])} |")
    lines += ["", "## Candidates (cross-validation over the training files)", "",
              "| candidate | best mean validation macro-F1 | at epoch |",
              "|---|---|---|"]
    for f1, ep, cand in trials:
        lines.append(f"| {describe(cand)} | {f1:.3f} | {ep} |")
    # baselines next to the model, per class too
    methods = [(f"**{base}** (this model)", "", pred_te, mf1, np.array(f1s))] + base_scores
    lines += ["", "## Baselines on the same held-out flows", "",
              "Same classes, split, capped training rows and held-out flows; tree settings chosen "
              "by the same cross-validation (mean validation macro-F1), then refit on all "
              "training files.", "",
              "| method | settings | held-out accuracy | macro-F1 |", "|---|---|---|---|"]
    for name, desc, pred, f1, _ in methods:
        lines.append(f"| {name} | {desc} | {(pred == yte_np).mean():.4f} | {f1:.4f} |")
    lines += ["", f"Against the best baseline ({best_base[0]}): macro-F1 difference "
              f"{mf1 - best_base[3]:+.4f}; 95 % bootstrap interval over the {len(test_files)} "
              f"held-out files (1000 draws with replacement, macro over the classes each draw "
              f"holds) [{lo:+.4f}, {hi:+.4f}]; this model ahead in {100 * ahead:.1f} % of the draws.",
              "", "F1 per class:", "",
              "| class | " + " | ".join(m[0].replace("**", "") for m in methods) + " |",
              "|---" * (len(methods) + 1) + "|"]
    for i, c in enumerate(classes):
        lines.append(f"| {c} | " + " | ".join(f"{m[4][i]:.2f}" for m in methods) + " |")
    lines += ["", "## `--min-prob`: precision and coverage on the held-out flows", "",
              "`etcpipe classify --min-prob P` labels a flow `unknown` when its top probability is "
              "below P. Coverage: the share of flows that keep a class; precision: the share of "
              "those that are right.", "", "| P | coverage | precision |", "|---|---|---|"]
    top = prob_te.max(1) if len(yte) else np.zeros(0)
    for pmin in (0.0, 0.5, 0.7, 0.9, 0.95):
        kept = top >= pmin
        prec = float((pred_te[kept] == yte_np[kept]).mean()) if kept.any() else float("nan")
        lines.append(f"| {pmin:g} | {kept.mean():.3f} | {prec:.3f} |")
    lines += ["", "Confusion matrix (rows: true, columns: predicted, order as above):", "", "```"]
    lines += [" ".join(f"{v:5d}" for v in row) for row in cm]
    lines += ["```", "", "## Held-out files", "", ", ".join(test_files), "",
              "## Dropped labels (flows)", "",
              ", ".join(f"{c} ({per_label[c]})" for c in dropped), ""]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.out}.onnx, .pt, .md, .confusion.svg")


if __name__ == "__main__":
    main()

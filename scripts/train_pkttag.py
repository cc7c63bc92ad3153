#!/usr/bin/python3
"""Trains the per-packet traffic tagger of bpf/pkttag.bpf.c and writes the
header the program and its C++ reference are compiled from.
`make pkttag-model` runs it.

Data: the nDPI captures, with the flow model's classes, labels and split by
capture file: scripts/train.py's own functions (labelled_flows,
classes_and_split, validation_split) on the same arguments, so the class
set, the held-out files and the validation files are the flow model's.
Per-packet inputs come from the C++ code path the program is tested
against: `etcpipe replay DIR --prog pkttag --features` prints every frame
with its 5-tuple and the 22 integer features (etcpipe::pkttag::parse,
include/etcpipe/pkttag.h). Every packet of a labelled flow is an example,
labelled with its flow's nDPI label (bidirectional 5-tuple, as train.py);
training examples are capped per (file, class) (--cap-per-file, a random
sample), the held-out files never.

Network (integer, what XDP runs):
  hidden  H units, ternary weights t in {-1,0,+1} (adds and subtracts), at
          most K non-zeros per unit, integer bias B, ReLU:
          h = max(0, t.x + B)  (x: the features, 0..15);
  output  power-of-two weights q in {0, +-1, ..., +-2^E} (shifts and adds),
          integer bias C: s = q.h + C;
  class   the first index of the largest score; tag = class + 1.
Training: a float model, then quantisation-aware training (straight-through
estimator) in two steps, as scripts/train_nicnn.py: the ternary hidden
layer first, then with it frozen the power-of-two output layer. H and K are
chosen by validation macro-F1 of the integer model on the validation files
(carved out of the training files); the held-out files are scored once.

Writes include/etcpipe/pkttag_model.h and models/pkttag.md.
Usage: scripts/train_pkttag.py --etcpipe build/etcpipe
"""
import argparse
import copy
import datetime
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
import torch.nn.functional as F_

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402  (the flow model's data functions)

NFEAT = 22
XMAX = 15
EMAX = 6
FEATURE_NAMES = ["tcp", "udp", "ipv6", "other", "lo_port_n3", "lo_port_n2", "lo_port_n1",
                 "lo_port_n0", "hi_port_n3", "len_128", "len_8", "tcp_flags_lo", "tcp_flags_hi",
                 "payload_len", "b0_hi", "b0_lo", "b1_hi", "b1_lo", "b2_hi", "b2_lo", "b3_hi", "b3_lo"]


def replay_features(etcpipe, pcaps, out_dir):
    """`etcpipe replay --prog pkttag --features` over the capture directory
    (cached): per capture name, the list of (flow, proto, src, sport, dst,
    dport, x) of its frames that have features; and the failed captures."""
    path = os.path.join(out_dir, "packets.jsonl")
    done = os.path.join(out_dir, ".done")
    if not os.path.exists(done):
        os.makedirs(out_dir, exist_ok=True)
        r = subprocess.run([etcpipe, "replay", pcaps, "--prog", "pkttag", "--features", "-q",
                            "-o", path], capture_output=True, text=True)
        if r.returncode not in (0, 4, 5) or not os.path.exists(path):
            sys.exit(f"train_pkttag: etcpipe replay failed (exit {r.returncode}): {r.stderr.strip()}")
        failed = sorted({os.path.basename(m.group(1)) for m in
                         re.finditer(r"^error: (.+?): ", r.stderr, re.M)})
        json.dump(failed, open(os.path.join(out_dir, "failed.json"), "w"))
        open(done, "w").close()
    per = {}
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            if d.get("type") != "packet" or "x" not in d:
                continue
            per.setdefault(os.path.basename(d["capture"]), []).append(
                (d["flow"], d["proto"], d["src"], d["sport"], d["dst"], d["dport"], d["x"]))
    return per, json.load(open(os.path.join(out_dir, "failed.json")))


class Net(nn.Module):
    def __init__(self, hidden, classes):
        super().__init__()
        self.l1 = nn.Linear(NFEAT, hidden)
        self.l2 = nn.Linear(hidden, classes)
        self.q1 = self.q2 = False
        self.k = NFEAT

    def l1_q(self):
        w = self.l1.weight  # (H, F)
        kth = w.abs().topk(self.k, dim=1).values[:, -1:]
        delta = 0.7 * w.abs().mean(1, keepdim=True)  # ternary threshold (TWN)
        keep = ((w.abs() >= kth) & (w.abs() > delta)).float()
        t = torch.sign(w) * keep
        alpha = (w.abs() * keep).sum(1) / keep.sum(1).clamp(min=1)
        beta = (alpha / XMAX).detach()          # input is x / 15
        wq = w + (alpha[:, None] * t - w).detach()
        bint = torch.round(self.l1.bias / beta.clamp(min=1e-9))
        bq = self.l1.bias + (beta * bint - self.l1.bias).detach()
        return wq, bq, t.detach(), beta, bint.detach()

    def l2_q(self, beta):
        wp = self.l2.weight * beta[None, :]
        s = (wp.abs().max() / 2.0 ** EMAX).detach()
        r = wp / s
        e = torch.round(torch.log2(r.abs().clamp(min=1e-12))).clamp(0, EMAX)
        keep = (r.abs() >= 2.0 ** -0.5).float()
        q = torch.sign(r) * 2.0 ** e * keep
        wq = self.l2.weight + (s * q / beta.clamp(min=1e-9)[None, :] - self.l2.weight).detach()
        cint = torch.round(self.l2.bias / s)
        cq = self.l2.bias + (s * cint - self.l2.bias).detach()
        return wq, cq, q.detach(), s, cint.detach()

    def forward(self, x):
        x = x.float() / XMAX
        if self.q1:
            wq, bq, _, beta, _ = self.l1_q()
            h = F_.relu(F_.linear(x, wq, bq))
        else:
            h = F_.relu(self.l1(x))
        if self.q2:
            wq, cq, _, _, _ = self.l2_q(self.l1_q()[3])
            return F_.linear(h, wq, cq)
        return self.l2(h)


def fit(net, x, y, weight, epochs, lr, params=None, wd=1e-4):
    opt = torch.optim.Adam(params if params is not None else net.parameters(), lr=lr, weight_decay=wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 256):
            idx = perm[i:i + 256]
            opt.zero_grad()
            loss_fn(net(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()


def export(net):
    with torch.no_grad():
        _, _, t, beta, bint = net.l1_q()
        _, _, q, _, cint = net.l2_q(beta)
    return {"t": t.numpy().astype(np.int64), "b": bint.numpy().astype(np.int64),
            "q": q.numpy().astype(np.int64), "c": cint.numpy().astype(np.int64)}


def int_forward(p, x):
    """The integer network (NumPy), exactly etcpipe::pkttag::infer."""
    h = np.maximum(0, x.astype(np.int64) @ p["t"].T + p["b"][None, :])
    s = h @ p["q"].T + p["c"][None, :]
    return s.argmax(1)  # first of equals


def train_one(hidden, k, x, y, ncls, seed, epochs):
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    freq = torch.bincount(yt, minlength=ncls).float()
    weight = (freq.sum() / (ncls * freq.clamp(min=1))).sqrt()
    net = Net(hidden, ncls)
    net.k = k
    fit(net, xt, yt, weight, epochs, 5e-3)
    float_net = copy.deepcopy(net)
    net.q1 = True
    fit(net, xt, yt, weight, epochs, 2e-3)
    net.l1.weight.requires_grad_(False)
    net.l1.bias.requires_grad_(False)
    net.q2 = True
    fit(net, xt, yt, weight, epochs, 2e-3, params=list(net.l2.parameters()))
    return net, float_net


def read_header(path):
    """The integer parameters back from the generated header."""
    text = open(path).read()

    def arr(name):
        m = re.search(name + r"\[[^=]*= \{(.*?)\};", text, re.S)
        return np.array([int(v) for v in re.findall(r"-?\d+", m.group(1))], np.int64)
    h = int(re.search(r"#define PKTTAG_HIDDEN (\d+)", text).group(1))
    c = int(re.search(r"#define PKTTAG_CLASSES (\d+)", text).group(1))
    return {"t": arr("pkttag_w1").reshape(h, NFEAT), "b": arr("pkttag_b1"),
            "q": arr("pkttag_w2").reshape(c, h), "c": arr("pkttag_b2")}


def check(args, pcaps):
    """The NumPy integer model from the header against the tags XDP gave
    (`etcpipe replay --prog pkttag`, built with that header)."""
    p = read_header(args.out_header)
    os.makedirs(args.work, exist_ok=True)
    out = os.path.join(args.work, "check.jsonl")
    r = subprocess.run([args.etcpipe, "replay", pcaps, "--prog", "pkttag", "--features", "-q",
                        "-o", out], capture_output=True, text=True)
    xs, tags = [], []
    with open(out) as f:
        for line in f:
            d = json.loads(line)
            if d.get("type") == "packet" and "x" in d:
                xs.append(d["x"])
                tags.append(d["tag"])
    pred = int_forward(p, np.array(xs, np.int64)) + 1
    bad = int((pred != np.array(tags)).sum())
    print(f"check: {len(tags)} packets with features; NumPy integer model vs XDP tags: {bad} differ "
          f"(replay exit {r.returncode})")
    return 1 if bad else 0


def confusion(y, pred, n):
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (y, pred), 1)
    return cm.tolist()


def c_array(rows, indent="\t"):
    return "".join(indent + "{" + ", ".join(f"{int(v)}" for v in r) + "},\n" for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--etcpipe", default="build/etcpipe")
    ap.add_argument("--work", default="build/pkttag-train")
    ap.add_argument("--flow-work", default="build/train", help="train.py's --work (features cache)")
    ap.add_argument("--out-header", default="include/etcpipe/pkttag_model.h")
    ap.add_argument("--report", default="models/pkttag.md")
    ap.add_argument("--flow-report", default="models/etc_app.md")
    ap.add_argument("--cap-per-file", type=int, default=1500,
                    help="training packets per (file, class), a random sample")
    ap.add_argument("--epochs", type=int, default=30, help="epochs per training step")
    ap.add_argument("--hidden", default="8,12,16", help="hidden sizes tried on validation")
    ap.add_argument("--nnz", default="6,10", help="non-zeros per hidden unit tried on validation")
    ap.add_argument("--vote", default="1,5,10", help="first-N packet votes reported per flow")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--check", action="store_true",
                    help="only compare the header's NumPy integer model with the XDP program's tags "
                         "on every packet (build with the header first)")
    args = ap.parse_args()
    if args.check:
        targs = train.build_parser().parse_args([])
        sys.exit(check(args, targs.pcaps))
    torch.set_num_threads(args.threads)
    t0 = time.time()

    # ---- the flow model's classes and split (scripts/train.py) ----
    # nDPI's captures only: the tagger replays them per packet (its model shipped before the
    # extra sources existed).
    targs = train.build_parser().parse_args(["--etcpipe", args.etcpipe, "--work", args.flow_work,
                                             "--sources", "ndpi"])
    kinds = train.feature_files(targs.spec)
    rows, _, _, failed, _ = train.labelled_flows(targs, kinds)
    (rows, classes, _, cidx, _, files_of, flows_per_file, train_files, test_files,
     test_set, group_of) = train.classes_and_split(targs, rows)
    fit_files, val_files = train.validation_split(targs, classes, files_of, flows_per_file, test_set,
                                                  group_of)
    failed_names = {f for f, _ in failed}
    ncls = len(classes)
    print(f"train_pkttag: {ncls} classes, {len(train_files)} training files ({len(fit_files)} fit, "
          f"{len(val_files)} validation), {len(test_files)} held-out files")

    # ---- per-packet features through the C++ path, labelled per flow ----
    per, replay_failed = replay_features(args.etcpipe, targs.pcaps, args.work)
    ex = {}  # file -> (x (n, 22), y (n,), flow ids (n,))
    unlabelled_pkts = 0
    for name in sorted(set(train_files) | test_set):
        if name in failed_names or name in replay_failed:
            continue
        labels = train.ndpi_labels(os.path.join(targs.results, name + ".out"))
        xs, ys, fl = [], [], []
        for flow, proto, src, sport, dst, dport, x in per.get(name, []):
            try:
                key = (proto, frozenset([(str(ipaddress.ip_address(src)), sport),
                                         (str(ipaddress.ip_address(dst)), dport)]))
            except ValueError:
                continue
            lab = labels.get(key)
            if lab not in cidx:
                unlabelled_pkts += 1
                continue
            xs.append(x)
            ys.append(cidx[lab])
            fl.append(flow)
        if xs:
            ex[name] = (np.array(xs, np.int64), np.array(ys, np.int64), np.array(fl, np.int64))

    def gather(files, cap):
        xs, ys, fs, fl = [], [], [], []
        rng = random.Random(targs.seed)
        for name in sorted(files):
            if name not in ex:
                continue
            x, y, f = ex[name]
            idx = list(range(len(y)))
            if cap:
                rng.shuffle(idx)
                seen, keep = {}, []
                for i in idx:
                    seen[y[i]] = seen.get(y[i], 0) + 1
                    if seen[y[i]] <= cap:
                        keep.append(i)
                idx = sorted(keep)
            xs.append(x[idx]), ys.append(y[idx]), fl.append(f[idx])
            fs += [name] * len(idx)
        return np.concatenate(xs), np.concatenate(ys), fs, np.concatenate(fl)

    xfit, yfit, _, _ = gather(fit_files, args.cap_per_file)
    xval, yval, _, _ = gather(val_files, args.cap_per_file)
    xtr, ytr, _, _ = gather(train_files, args.cap_per_file)
    xte, yte, fte, flte = gather(test_files, 0)
    print(f"packets: fit {len(yfit)}, validation {len(yval)}, train {len(ytr)}, held-out {len(yte)}")

    # ---- H, K chosen on the validation files (integer model) ----
    trials = []
    for hidden in [int(v) for v in args.hidden.split(",")]:
        for k in [int(v) for v in args.nnz.split(",")]:
            net, _ = train_one(hidden, k, xfit, yfit, ncls, targs.seed, args.epochs)
            pred = int_forward(export(net), xval)
            f1 = train.macro_f1(confusion(yval, pred, ncls))[0]
            acc = float((pred == yval).mean())
            trials.append((f1, acc, hidden, k))
            print(f"  hidden {hidden} nnz {k}: validation macro-F1 {f1:.4f}, accuracy {acc:.4f}")
    val_f1, val_acc, hidden, k = max(trials, key=lambda t: (round(t[0], 3), -t[2], -t[3]))
    print(f"chosen: hidden {hidden}, nnz {k} (validation macro-F1 {val_f1:.4f}); retraining on all training files")

    net, float_net = train_one(hidden, k, xtr, ytr, ncls, targs.seed, args.epochs)
    float_net.eval()
    with torch.no_grad():
        float_pred = float_net(torch.from_numpy(xte)).argmax(1).numpy()
    p = export(net)
    pred = int_forward(p, xte)
    pred_tr = int_forward(p, xtr)

    # ---- held-out evaluation ----
    cm = confusion(yte, pred, ncls)
    acc = float((pred == yte).mean())
    mf1, f1s = train.macro_f1(cm)
    float_acc = float((float_pred == yte).mean())
    float_f1 = train.macro_f1(confusion(yte, float_pred, ncls))[0]
    major = int(np.bincount(ytr, minlength=ncls).argmax())
    base_acc = float((yte == major).mean())
    base_f1 = train.macro_f1(confusion(yte, np.full_like(yte, major), ncls))[0]
    votes = [int(v) for v in args.vote.split(",")]
    flows = {}  # (file, flow) -> (label, [preds in order])
    for i in range(len(yte)):
        flows.setdefault((fte[i], int(flte[i])), (int(yte[i]), []))[1].append(int(pred[i]))
    fy = np.array([v[0] for v in flows.values()])
    flow_res = []
    for n in votes:
        fp = np.array([int(np.bincount(v[1][:n], minlength=ncls).argmax()) for v in flows.values()])
        fcm = confusion(fy, fp, ncls)
        flow_res.append((n, float((fp == fy).mean()), train.macro_f1(fcm)[0]))
    # the majority class by training flows
    tr_flow_counts = np.bincount([cidx[r[1]] for r in rows if r[0] in set(train_files)], minlength=ncls)
    fmajor = int(tr_flow_counts.argmax())
    fbase_acc = float((fy == fmajor).mean())
    fbase_f1 = train.macro_f1(confusion(fy, np.full_like(fy, fmajor), ncls))[0]
    host = re.search(r"\*\*Accuracy ([0-9.]+), macro-F1 ([0-9.]+)\*\* on (\d+) flows",
                     open(args.flow_report).read())
    nnz1 = int((p["t"] != 0).sum())
    nnz2 = int((p["q"] != 0).sum())
    print(f"held-out: per packet accuracy {acc:.4f}, macro-F1 {mf1:.4f} ({len(yte)} packets); "
          + "; ".join(f"per flow (first {n}) accuracy {a:.4f}, macro-F1 {f:.4f}" for n, a, f in flow_res)
          + f" ({len(fy)} flows)")

    # ---- header ----
    names = ", ".join(f'"{c}"' for c in classes)
    hdr = f"""/* GENERATED by scripts/train_pkttag.py — do not edit; `make pkttag-model` rewrites it.
 * The integer per-packet traffic tagger of bpf/pkttag_prog.h and
 * etcpipe::pkttag::reference: {NFEAT} features (include/etcpipe/pkttag.h), {hidden} hidden units
 * (ternary, <= {k} non-zeros each, {nnz1} in all), {ncls} classes (power-of-two weights, {nnz2} non-zeros).
 * Held-out files: per-packet accuracy {acc:.4f}, macro-F1 {mf1:.4f} ({len(yte)} packets).
 * Valid C and C++; the BPF program folds every entry into an immediate
 * (constant indices only), so no array reaches the object. */
#ifndef ETCPIPE_PKTTAG_MODEL_H
#define ETCPIPE_PKTTAG_MODEL_H

#define PKTTAG_HIDDEN {hidden}
#define PKTTAG_CLASSES {ncls}
#define PKTTAG_OUT_EMAX {EMAX}

/* hidden weights t[j][i] in {{-1, 0, 1}}: unit j, feature i */
static const signed char pkttag_w1[{hidden}][{NFEAT}] = {{
{c_array(p["t"])}}};
/* hidden bias B_j (feature units) */
static const int pkttag_b1[{hidden}] = {{{", ".join(str(int(v)) for v in p["b"])}}};
/* output weights q[k][j] in {{0, ±2^e}}, e <= PKTTAG_OUT_EMAX */
static const int pkttag_w2[{ncls}][{hidden}] = {{
{c_array(p["q"])}}};
static const int pkttag_b2[{ncls}] = {{{", ".join(str(int(v)) for v in p["c"])}}};
#ifdef __cplusplus
/* class k is tag k + 1 */
inline constexpr const char* pkttag_class_names[{ncls}] = {{{names}}};
#endif

#endif /* ETCPIPE_PKTTAG_MODEL_H */
"""
    with open(args.out_header, "w") as f:
        f.write(hdr)

    # ---- report ----
    count = lambda yy, c: int((yy == c).sum())  # noqa: E731
    L = ["# Training report: the per-packet tagger (`bpf/pkttag.bpf.c`)", "",
         f"Produced by `make pkttag-model` (scripts/train_pkttag.py) on "
         f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, torch "
         f"{torch.__version__}, {args.threads} threads, {time.time() - t0:.0f} s.", "",
         f"- Inputs: {NFEAT} integer features 0..15 of one packet (include/etcpipe/pkttag.h: "
         f"{', '.join(FEATURE_NAMES)}), computed by `etcpipe replay --prog pkttag --features` "
         f"(etcpipe::pkttag::parse, the C++ reference's own parse).",
         f"- Classes, labels and split: the flow model's (scripts/train.py functions): {ncls} classes, "
         f"{len(train_files)} training files, {len(test_files)} held-out files; every packet of a "
         f"labelled flow is an example with its flow's label; training packets capped at "
         f"{args.cap_per_file} per (file, class); held-out packets not capped.",
         f"- Network: {hidden} hidden units with ternary weights (≤ {k} non-zeros per unit, {nnz1} "
         f"in all), integer bias, ReLU; {ncls} outputs with power-of-two weights (0, ±2^0..±2^{EMAX}; "
         f"{nnz2} non-zeros), integer bias; argmax. Quantisation-aware training in two steps "
         f"(ternary layer, then the power-of-two layer with the first frozen), {args.epochs} epochs "
         f"per step.",
         f"- Chosen on the validation files ({len(fit_files)} fit, {len(val_files)} validation "
         f"files, integer model's macro-F1 per packet): "
         + "; ".join(f"H {t[2]}/K {t[3]}: {t[0]:.3f} (acc {t[1]:.3f})" for t in trials)
         + f". Chosen: H {hidden}, K {k}.",
         f"- Packets: {len(ytr)} training (after the cap), {len(yte)} held-out; {unlabelled_pkts} "
         f"packets of the split's files had no flow label in the class set.",
         "", "## Held-out files", "",
         "| | accuracy | macro-F1 | on |", "|---|---|---|---|",
         f"| per packet, integer model (= XDP) | {acc:.4f} | {mf1:.4f} | {len(yte)} packets |",
         f"| per packet, float model before quantisation (same size) | {float_acc:.4f} | {float_f1:.4f} | {len(yte)} packets |",
         f"| per packet, majority class ({classes[major]}) | {base_acc:.4f} | {base_f1:.4f} | {len(yte)} packets |"]
    for n, a_, f_ in flow_res:
        L.append(f"| per flow, majority vote of the first {n} packet{'s' if n > 1 else ''} | {a_:.4f} | "
                 f"{f_:.4f} | {len(fy)} flows |")
    L.append(f"| per flow, majority class ({classes[fmajor]}) | {fbase_acc:.4f} | {fbase_f1:.4f} | {len(fy)} flows |")
    if host:
        L.append(f"| host flow model (models/etc_app.md, not recomputed) | {host.group(1)} | "
                 f"{host.group(2)} | {host.group(3)} flows |")
    L += ["", f"Training accuracy per packet (integer): {float((pred_tr == ytr).mean()):.4f}.",
          "The flows here are the bidirectional 5-tuples of the held-out files' labelled packets "
          "(as `etcpipe replay --prog pkttag` groups them); the host model's flows come from "
          "`etcpipe features`, so the two flow counts need not be equal.", "",
          "| class | train packets | held-out packets | held-out F1 (per packet) |", "|---|---|---|---|"]
    for i, c in enumerate(classes):
        L.append(f"| {c} | {count(ytr, i)} | {count(yte, i)} | {f1s[i]:.3f} |")
    L += ["", "Confusion matrix per packet (rows: true, columns: predicted, order as above):", "", "```"]
    L += [" ".join(f"{v:6d}" for v in row) for row in cm]
    L += ["```", ""]
    with open(args.report, "w") as f:
        f.write("\n".join(L))
    print(f"wrote {args.out_header}, {args.report}")


if __name__ == "__main__":
    main()

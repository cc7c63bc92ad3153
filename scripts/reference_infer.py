#!/usr/bin/python3
"""python3-torch reference for the etcpipe inference engine.

  probs: reads the .npy tensors `etcpipe features` writes (one per feature of
         the model's spec) from DIR, applies the etcpipe-v1 input transform
         and runs the torch model of the checkpoint (scripts/etcmodel.py, the
         module that was trained and exported — not the ONNX file), writing
         float32 probabilities [rows, classes] to OUT.npy.
  bench: times the same torch model at the given batch sizes (flows/s),
         printing one line "torch threads=T batch=B flows_per_s=X" each.

The C++ tests (tests/unit/test_infer.cpp) and build/bench_infer run this.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from etcmodel import build, transform  # noqa: E402


def load(pt):
    ck = torch.load(pt, map_location="cpu")
    model = build(ck)
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, ck


def inputs(ck, directory):
    out = []
    for part in ck["spec"].split(","):
        kind, shape = part.split(":")
        raw = np.load(os.path.join(directory, f"{kind}_{shape}.npy"))
        out.append(torch.from_numpy(transform(kind, raw)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["probs", "bench"])
    ap.add_argument("--checkpoint", default="models/etc_app.pt")
    ap.add_argument("--inputs", required=True, help="directory with the feature .npy files")
    ap.add_argument("--out", help="probs: output .npy")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batches", default="1,64,1024")
    ap.add_argument("--seconds", type=float, default=1.0, help="bench: time per point")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, ck = load(args.checkpoint)
    x = inputs(ck, args.inputs)
    with torch.no_grad():
        if args.mode == "probs":
            probs = model(*x).numpy().astype(np.float32)
            np.save(args.out, probs)
            print(f"reference: {probs.shape[0]} rows x {probs.shape[1]} classes -> {args.out}")
            return
        rows = x[0].shape[0]
        for b in [int(v) for v in args.batches.split(",")]:
            idx = [torch.arange(s, s + b) % rows for s in range(0, max(rows, b), b)]
            done, start = 0, time.perf_counter()
            k = 0
            while time.perf_counter() - start < args.seconds or done == 0:
                sel = idx[k % len(idx)]
                model(*[t[sel] for t in x])
                done += b
                k += 1
            rate = done / (time.perf_counter() - start)
            print(f"torch threads={args.threads} batch={b} flows_per_s={rate:.1f}", flush=True)


if __name__ == "__main__":
    main()

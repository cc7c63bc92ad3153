#!/usr/bin/python3
"""Validation-only study of quantisation-aware training variants for the
in-NIC digit CNN (scripts/train_nicnn.py's network, 3 filters, 25 taps, 12
non-zeros). Never looks at the test images. For each variant and seed it
prints the validation accuracy of the float model, of the model with only the
conv quantised (ternary) and of the integer model, then the means over seeds.

Variants (combine with '_'): kd (distillation from the float model, as
train_nicnn.py --distill), long (300 epochs per QAT step instead of 150),
lr3 (conv QAT at lr 3e-3), fixmask (the ternary non-zero positions fixed from
the float weights), joint (a last step with conv and fc quantised, both
trained), mse (fc scale chosen by least squares over a grid, not max/2^6),
tern (150 more float epochs whose penalty pulls each filter toward 12
non-zeros of one magnitude before the ternary step; the float reference is the
model before them), best (each QAT step keeps the epoch whose quantised model
fits the training images best, instead of the last one), fc2 (any fc weight
may be the sum of two powers of two), sNN (at most NN of them: the code store
holds about 70), kNN (NN conv non-zeros per filter instead of 12), refine
(train_nicnn.refine on the fit images after QAT: coordinate descent on the
integer model), aug (refine on the fit images and their one-pixel shifts).
train_nicnn.py ships tern_best_s70_refine.
FOLDS > 1: K-fold cross-validation over the 1,347 training images (contiguous
folds, as the writers are), each fold a validation part in turn: one
validation split of 270 images is too small to tell variants apart.
Usage: scripts/nicnn_qat_study.py VARIANT [SEEDS [FOLDS]]   e.g. tern_best 4 5
"""
import importlib.util
import os
import sys

import numpy as np
import torch

spec = importlib.util.spec_from_file_location(
    "train_nicnn", os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_nicnn.py"))
t = importlib.util.module_from_spec(spec)
spec.loader.exec_module(t)


def fc_q_least_squares(self, beta):
    """fc_q with the scale s that minimises the squared weight error."""
    bcol = beta.repeat_interleave(4)
    wp = (self.fc.weight * bcol[None, :]).detach()

    s = min((wp.abs().max() / 2.0 ** (self.emax + k / 8.0) for k in range(25)),
            key=lambda s: float(((s * t.pow2_round(wp / s, self.emax) - wp) ** 2).sum()))
    q = t.pow2_round(self.fc.weight * bcol[None, :] / s, self.emax)
    wq = self.fc.weight + (s * q / bcol[None, :] - self.fc.weight).detach()
    cint = torch.round(self.fc.bias / s)
    cq = self.fc.bias + (s * cint - self.fc.bias).detach()
    return wq, cq, q.detach(), s, cint.detach()


def shifted(x, y):
    """x and its eight one-pixel translations (zero fill): a digit moved by a
    pixel is the same digit. (9N, 8, 8) images and their labels."""
    out = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            z = np.zeros_like(x)
            z[:, max(0, dy):8 + min(0, dy), max(0, dx):8 + min(0, dx)] = \
                x[:, max(0, -dy):8 + min(0, -dy), max(0, -dx):8 + min(0, -dx)]
            out.append(z)
    return np.concatenate(out), np.tile(y, 9)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    variant = sys.argv[1].split("_")
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    folds = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    torch.set_num_threads(1)
    if "mse" in variant:
        t.Net.fc_q = fc_q_least_squares
    # fc2: every fc weight may take a second power of two; sNN: at most NN of them
    fc_second = next((int(v[1:]) for v in variant if v[0] == "s" and v[1:].isdigit()),
                     10 ** 6 if "fc2" in variant else 0)
    k_nnz = next((int(v[1:]) for v in variant if v[0] == "k" and v[1:].isdigit()), 12)
    x, y = t.load()
    idx = np.arange(t.N_TRAIN)
    splits = ([(idx < t.N_FIT, idx >= t.N_FIT)] if folds <= 1 else
              [(idx * folds // t.N_TRAIN != k, idx * folds // t.N_TRAIN == k) for k in range(folds)])
    epochs = 300 if "long" in variant else 150
    keep_best = "best" in variant
    res = []
    for k, (fit_mask, val_mask), seed in [(k, sp, sd) for k, sp in enumerate(splits) for sd in range(seeds)]:
        xtr, ytr = x[:t.N_TRAIN], y[:t.N_TRAIN]  # training images only, never the test ones
        xfit, yfit, xval, yval = xtr[fit_mask], ytr[fit_mask], xtr[val_mask], ytr[val_mask]
        torch.manual_seed(seed)
        net = t.Net(3)
        net.taps, net.k, net.fc_second = 25, k_nnz, fc_second
        t.fit(net, xfit, yfit, epochs=150, lr=0.01)
        fl = t.Net(3)
        fl.load_state_dict(net.state_dict())
        if "tern" in variant:
            t.ternary_pull(net, xfit, yfit)
        teacher = fl if "kd" in variant else None
        if "fixmask" in variant:
            with torch.no_grad():
                top = net.conv.weight[:, 0].abs().reshape(3, -1).topk(k_nnz, dim=1).indices
                mask = torch.zeros(3, 25).scatter(1, top, 1.0).reshape(3, 1, 5, 5)
                net.conv.weight.mul_(mask)
            net.conv.weight.register_hook(lambda g: g * mask)
        net.quant_conv = True
        t.fit(net, xfit, yfit, epochs=epochs, lr=3e-3 if "lr3" in variant else 1e-3, teacher=teacher,
              keep_best=keep_best)
        acc_conv = t.float_acc(net, xval, yval)
        net.conv.weight.requires_grad_(False)
        net.conv.bias.requires_grad_(False)
        net.quant_fc = True
        t.fit(net, xfit, yfit, epochs=epochs, lr=1e-3, teacher=teacher, keep_best=keep_best)
        if "joint" in variant:
            net.conv.weight.requires_grad_(True)
            net.conv.bias.requires_grad_(True)
            t.fit(net, xfit, yfit, epochs=100, lr=3e-4, teacher=teacher)
        p = t.export(net)
        _, cls, _ = t.int_forward(p, xval)
        row = (t.float_acc(fl, xval, yval), acc_conv, float((cls == yval).mean()))
        if "refine" in variant:
            cls_before = cls
            xr, yr = shifted(xfit, yfit) if "aug" in variant else (xfit, yfit)
            p = t.refine(p, xr, yr, p["scale"], net.k, fc_second)
            _, cls, _ = t.int_forward(p, xval)
            _, cls_fit, _ = t.int_forward(p, xfit)
            print(f"  refine: validation integer {float((cls_before == yval).mean()):.3f} -> "
                  f"{float((cls == yval).mean()):.3f} (fit {float((cls_fit == yfit).mean()):.3f})", flush=True)
            row = (row[0], row[1], float((cls == yval).mean()))
        res.append(row)
        seconds = t.second_powers(p["q"])
        fold = "" if folds <= 1 else f"fold {k} "
        print(f"{sys.argv[1]} {fold}seed {seed}: validation float {row[0]:.3f} conv ternary {row[1]:.3f} "
              f"integer {row[2]:.3f} (fc second terms {seconds})", flush=True)
    r = np.array(res)
    gap = 100 * (r[:, 2] - r[:, 0])
    print(f"{sys.argv[1]} mean of {len(res)} runs: float {r[:, 0].mean():.3f} conv ternary {r[:, 1].mean():.3f} "
          f"integer {r[:, 2].mean():.3f} (integer - float {gap.mean():+.2f} "
          f"points, sd {gap.std():.2f}, lowest integer {r[:, 2].min():.3f})")


if __name__ == "__main__":
    main()

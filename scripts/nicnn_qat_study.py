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
trained), mse (fc scale chosen by least squares over a grid, not max/2^6).
Usage: scripts/nicnn_qat_study.py VARIANT [SEEDS]   e.g. kd_fixmask 5
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

    def quant(r):
        e = torch.round(torch.log2(r.abs().clamp(min=1e-12))).clamp(0, self.emax)
        return torch.sign(r) * 2.0 ** e * (r.abs() >= 2.0 ** -0.5).float()

    s = min((wp.abs().max() / 2.0 ** (self.emax + k / 8.0) for k in range(25)),
            key=lambda s: float(((s * quant(wp / s) - wp) ** 2).sum()))
    q = quant(self.fc.weight * bcol[None, :] / s)
    wq = self.fc.weight + (s * q / bcol[None, :] - self.fc.weight).detach()
    cint = torch.round(self.fc.bias / s)
    cq = self.fc.bias + (s * cint - self.fc.bias).detach()
    return wq, cq, q.detach(), s, cint.detach()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    variant = sys.argv[1].split("_")
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    torch.set_num_threads(1)
    if "mse" in variant:
        t.Net.fc_q = fc_q_least_squares
    x, y = t.load()
    xfit, yfit = x[:t.N_FIT], y[:t.N_FIT]
    xval, yval = x[t.N_FIT:t.N_TRAIN], y[t.N_FIT:t.N_TRAIN]
    epochs = 300 if "long" in variant else 150
    res = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        net = t.Net(3)
        net.taps, net.k = 25, 12
        t.fit(net, xfit, yfit, epochs=150, lr=0.01)
        fl = t.Net(3)
        fl.load_state_dict(net.state_dict())
        teacher = fl if "kd" in variant else None
        if "fixmask" in variant:
            with torch.no_grad():
                top = net.conv.weight[:, 0].abs().reshape(3, -1).topk(12, dim=1).indices
                mask = torch.zeros(3, 25).scatter(1, top, 1.0).reshape(3, 1, 5, 5)
                net.conv.weight.mul_(mask)
            net.conv.weight.register_hook(lambda g: g * mask)
        net.quant_conv = True
        t.fit(net, xfit, yfit, epochs=epochs, lr=3e-3 if "lr3" in variant else 1e-3, teacher=teacher)
        acc_conv = t.float_acc(net, xval, yval)
        net.conv.weight.requires_grad_(False)
        net.conv.bias.requires_grad_(False)
        net.quant_fc = True
        t.fit(net, xfit, yfit, epochs=epochs, lr=1e-3, teacher=teacher)
        if "joint" in variant:
            net.conv.weight.requires_grad_(True)
            net.conv.bias.requires_grad_(True)
            t.fit(net, xfit, yfit, epochs=100, lr=3e-4, teacher=teacher)
        _, cls, _ = t.int_forward(t.export(net), xval)
        row = (t.float_acc(fl, xval, yval), acc_conv, float((cls == yval).mean()))
        res.append(row)
        print(f"{sys.argv[1]} seed {seed}: validation float {row[0]:.3f} conv ternary {row[1]:.3f} "
              f"integer {row[2]:.3f}", flush=True)
    r = np.array(res)
    print(f"{sys.argv[1]} mean of {seeds}: float {r[:, 0].mean():.3f} conv ternary {r[:, 1].mean():.3f} "
          f"integer {r[:, 2].mean():.3f} (integer - float {100 * (r[:, 2] - r[:, 0]).mean():+.2f} "
          f"points, lowest integer {r[:, 2].min():.3f})")


if __name__ == "__main__":
    main()

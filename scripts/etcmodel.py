"""The classifier shared by scripts/train.py (training, ONNX export) and
scripts/reference_infer.py (the python3-torch oracle the C++ engine is tested
against), plus the input transform both sides apply.

Input transform "etcpipe-v1" (also implemented by gpu/infer_*: the ONNX
graph takes float tensors, the extractor writes integers):
  payload/packet (u8):  x / 255
  sizes (i32, bytes):   x / 1500
  iat (i64, µs):        sign(x) * log1p(|x|) / 16
  port (i32):           unchanged (protocol * 65536 + the lower port)
"""
import numpy as np
import torch
from torch import nn

PREPROCESS = "etcpipe-v1"


def transform(kind, raw):
    """raw numpy array from `etcpipe features` → float32 model input."""
    x = raw.astype(np.float64)
    if kind in ("payload", "packet"):
        y = x / 255.0
    elif kind == "sizes":
        y = x / 1500.0
    elif kind == "iat":
        y = np.sign(x) * np.log1p(np.abs(x)) / 16.0
    elif kind == "port":
        y = x  # IP protocol * 65536 + server port, exact in float32
    else:
        raise ValueError(f"unknown feature kind {kind}")
    return y.astype(np.float32)


class EtcNet(nn.Module):
    """Per-packet 1D CNN over payload:HxL (weights shared across the H
    packets), a dense branch over sizes:H + iat:H, and a small head.
    Outputs class probabilities (softmax inside the graph)."""

    def __init__(self, h, l, n_classes, conv1=16, conv2=32, seq=32, hidden=64, dropout=0.0):
        super().__init__()
        self.h, self.l, self.conv2 = h, l, conv2
        self.packet_cnn = nn.Sequential(
            nn.Conv1d(1, conv1, kernel_size=8, stride=4), nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(conv1, conv2, kernel_size=5), nn.ReLU(),
            nn.AdaptiveMaxPool1d(1))
        self.seq = nn.Sequential(nn.Linear(2 * h, seq), nn.ReLU())
        self.head = nn.Sequential(
            nn.Linear(h * conv2 + seq, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Dropout(dropout),  # identity at inference (and in the ONNX export)
            nn.Linear(hidden, n_classes))

    def logits(self, payload, sizes, iat):
        per_packet = self.packet_cnn(payload.reshape(-1, 1, self.l))
        flow = per_packet.reshape(-1, self.h * self.conv2)
        s = self.seq(torch.cat([sizes, iat], 1))
        return self.head(torch.cat([flow, s], 1))

    def forward(self, payload, sizes, iat):
        return torch.softmax(self.logits(payload, sizes, iat), 1)


class PortOneHot(nn.Module):
    """Exact one-hot of a port code (IP protocol * 65536 + server port, the
    `port:1` feature) over a fixed vocabulary, plus TCP / UDP indicators for
    codes outside it, built from ops the engine runs (Gemm, Relu): for an
    integer x, relu(x-v+1) - 2 relu(x-v) + relu(x-v-1) is 1 at x = v and 0
    elsewhere; relu(x-a+1) - relu(x-a) is the step x >= a. All values stay
    integers below 2^24, so float32 computes them exactly (CPU and GPU).
    Not trained: the weights are buffers of fixed values."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = [int(v) for v in vocab]
        steps = [6 << 16, 7 << 16, 17 << 16, 18 << 16]
        n_in = 3 * len(self.vocab) + 2 * len(steps)
        w1 = torch.ones(n_in, 1)
        b1 = torch.zeros(n_in)
        w2 = torch.zeros(len(self.vocab) + 2, n_in)
        for i, v in enumerate(self.vocab):
            b1[3 * i:3 * i + 3] = torch.tensor([-v + 1.0, -v, -v - 1.0])
            w2[i, 3 * i:3 * i + 3] = torch.tensor([1.0, -2.0, 1.0])
        base = 3 * len(self.vocab)
        for j, a in enumerate(steps):
            b1[base + 2 * j:base + 2 * j + 2] = torch.tensor([-a + 1.0, -a])
        # TCP = step(6<<16) - step(7<<16), UDP = step(17<<16) - step(18<<16)
        for row, (j_on, j_off) in enumerate(((0, 1), (2, 3))):
            for j, sign in ((j_on, 1.0), (j_off, -1.0)):
                w2[len(self.vocab) + row, base + 2 * j] = sign
                w2[len(self.vocab) + row, base + 2 * j + 1] = -sign
        self.register_buffer("w1", w1)
        self.register_buffer("b1", b1)
        self.register_buffer("w2", w2)
        self.width = len(self.vocab) + 2

    def forward(self, code):  # code: [B, 1] float
        hidden = torch.relu(nn.functional.linear(code, self.w1, self.b1))
        return nn.functional.linear(hidden, self.w2)


class ByteCnn(nn.Module):
    """Deep-Packet-style 1D CNN over the first P packets' first B payload
    bytes side by side (payload:PxB), a dense branch over sizes:H + iat:H,
    and (with a port vocabulary) a learnt embedding of the server port's
    one-hot (port:1). With `wide`, the port one-hot also goes straight to the
    logits through one linear layer (wide and deep: a port that names its
    class, as the port rule finds, need not pass through the hidden layers).
    Outputs class probabilities (softmax in the graph)."""

    def __init__(self, p, b, h, n_classes, port_vocab=None, conv1=32, conv2=64, seq=32,
                 port_dim=16, hidden=128, dropout=0.3, wide=False):
        super().__init__()
        self.p, self.b = p, b
        lout = ((p * b - 5) // 2 + 1 - 5) // 2 + 1
        self.pool = max(1, lout // 4)
        self.cnn = nn.Sequential(
            nn.Conv1d(1, conv1, kernel_size=5, stride=2), nn.ReLU(),
            nn.Conv1d(conv1, conv2, kernel_size=5, stride=2), nn.ReLU(),
            nn.MaxPool1d(self.pool))
        self.cnn_out = conv2 * (lout // self.pool)
        self.seq = nn.Sequential(nn.Linear(2 * h, seq), nn.ReLU())
        self.port = PortOneHot(port_vocab) if port_vocab is not None else None
        self.port_embed = nn.Linear(self.port.width, port_dim) if self.port is not None else None
        width = self.cnn_out + seq + (port_dim if self.port is not None else 0)
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, n_classes))
        self.wide = nn.Linear(self.port.width, n_classes, bias=False) if wide and self.port is not None else None

    def logits(self, payload, sizes, iat, port=None):
        x = self.cnn(payload.reshape(-1, 1, self.p * self.b)).reshape(-1, self.cnn_out)
        parts = [x, self.seq(torch.cat([sizes, iat], 1))]
        if self.port is not None:
            onehot = self.port(port)  # port: [B, 1]
            parts.append(torch.relu(self.port_embed(onehot)))
        out = self.head(torch.cat(parts, 1))
        return out + self.wide(onehot) if self.wide is not None else out

    def forward(self, payload, sizes, iat, port=None):
        return torch.softmax(self.logits(payload, sizes, iat, port), 1)


class Ensemble(nn.Module):
    """The average of K members' logits, then softmax: members trained from
    different initialisations vote. The 1/K is folded into each member's
    last layer (scale_last_layers, once, after training), so the graph is
    the members side by side, Add and Softmax."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def scale_last_layers(self):
        k = len(self.members)
        with torch.no_grad():
            for m in self.members:
                last = m.head[-1]
                last.weight.div_(k)
                last.bias.div_(k)
                if getattr(m, "wide", None) is not None:
                    m.wide.weight.div_(k)

    def logits(self, *x):
        total = self.members[0].logits(*x)
        for m in self.members[1:]:
            total = total + m.logits(*x)
        return total

    def forward(self, *x):
        return torch.softmax(self.logits(*x), 1)


def build(ck):
    """The model a checkpoint describes (scripts/train.py writes "family"
    and its arguments; older checkpoints are EtcNet)."""
    family = ck.get("family", "etcnet")
    if family == "etcnet":
        return EtcNet(ck["h"], ck["l"], len(ck["classes"]), dropout=ck.get("dropout", 0.0))
    if family == "bytecnn":
        a = ck["args"]
        return ByteCnn(a["p"], a["b"], a["h"], len(ck["classes"]), port_vocab=a.get("port_vocab"),
                       dropout=a.get("dropout", 0.3), hidden=a.get("hidden", 128),
                       wide=a.get("wide", False))
    if family == "ensemble":
        return Ensemble([build({**m, "classes": ck["classes"]}) for m in ck["members"]])
    raise ValueError(f"unknown model family {family}")

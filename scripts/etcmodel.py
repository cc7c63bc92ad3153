"""The classifier shared by scripts/train.py (training, ONNX export) and
scripts/reference_infer.py (the python3-torch oracle the C++ engine is tested
against), plus the input transform both sides apply.

Input transform "etcpipe-v1" (also implemented by gpu/infer_*: the ONNX
graph takes float tensors, the extractor writes integers):
  payload/packet (u8):  x / 255
  sizes (i32, bytes):   x / 1500
  iat (i64, µs):        sign(x) * log1p(|x|) / 16
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

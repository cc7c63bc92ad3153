"""Baselines that scripts/train.py scores next to every model it trains, on
the same classes, split, capped training rows and held-out flows:

  majority    the most frequent training class for every flow;
  port rule   the most frequent training label per (IP protocol, server
              port), the server port being the lower of the two; unseen
              pairs fall back to the protocol's, then the overall majority;
  forest      a random forest (python3-sklearn) on statistics: the sizes and
              inter-arrival times of the first packets;
  forest+bytes / boosting+bytes
              a random forest / histogram gradient boosting on the same
              statistics plus the first BYTES payload bytes of the first
              PACKETS packets;
  forest+bytes+port
              the forest with the IP protocol and server port as two more
              inputs (what the port rule and the port-aware models see).

Tree settings are chosen by cross-validation over the training files (the
folds scripts/train.py chooses its own model with; never the held-out
files), then refit on all training rows.
"""
import numpy as np

BYTES, PACKETS = 64, 3


def macro_f1(y, pred, n_classes, present_only=False):
    """Macro-F1 over all classes (or only those in y), and the F1 per class."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (y, pred), 1)
    return macro_f1_cm(cm, present_only)


def macro_f1_cm(cm, present_only=False):
    """macro_f1 of a confusion matrix (rows true, columns predicted)."""
    cm = np.asarray(cm)
    n_classes = len(cm)
    tp = np.diag(cm).astype(float)
    prec = np.divide(tp, cm.sum(0), out=np.zeros(n_classes), where=cm.sum(0) > 0)
    rec = np.divide(tp, cm.sum(1), out=np.zeros(n_classes), where=cm.sum(1) > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(n_classes), where=prec + rec > 0)
    if present_only:
        return float(f1[cm.sum(1) > 0].mean()), f1
    return float(f1.mean()), f1


def server_key(flow):
    proto, sport, dport = flow
    return proto, min(sport, dport)


class PortRule:
    def fit(self, flows, y):
        count, by_proto = {}, {}
        for f, c in zip(flows, y):
            k = server_key(f)
            count.setdefault(k, {}).setdefault(c, 0)
            count[k][c] += 1
            by_proto.setdefault(k[0], {}).setdefault(c, 0)
            by_proto[k[0]][c] += 1
        pick = lambda d: max(sorted(d), key=lambda c: d[c])  # noqa: E731
        self.table = {k: pick(d) for k, d in count.items()}
        self.proto = {p: pick(d) for p, d in by_proto.items()}
        self.majority = int(np.bincount(y).argmax())
        return self

    def predict(self, flows):
        out = []
        for f in flows:
            k = server_key(f)
            out.append(self.table.get(k, self.proto.get(k[0], self.majority)))
        return np.array(out, np.int64)


def stat_features(x):
    """sizes + iat (raw: trees do not care about scale)."""
    return np.concatenate([x["sizes"].reshape(len(x["sizes"]), -1).astype(np.float32),
                           x["iat"].reshape(len(x["iat"]), -1).astype(np.float32)], 1)


def byte_features(x):
    p = x["payload"][:, :PACKETS, :BYTES].reshape(len(x["payload"]), -1).astype(np.float32)
    return np.concatenate([stat_features(x), p], 1)


def byte_port_features(x):
    """byte_features plus the IP protocol and the server port (port:1)."""
    code = x["port"][:, 0].astype(np.int64)
    return np.concatenate([byte_features(x), np.stack([code >> 16, code & 0xffff], 1).astype(np.float32)], 1)


def tree_grid(kind, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    if kind == "forest":
        return [(f"max_features {mf}, min_samples_leaf {leaf}, class_weight {cw}",
                 lambda mf=mf, leaf=leaf, cw=cw: RandomForestClassifier(
                     n_estimators=300, max_features=mf, min_samples_leaf=leaf, class_weight=cw,
                     n_jobs=-1, random_state=seed))
                for mf in ("sqrt", 0.2) for leaf in (1, 3) for cw in (None, "balanced_subsample")]
    return [(f"learning_rate {lr}, max_leaf_nodes {nodes}",
             lambda lr=lr, nodes=nodes: HistGradientBoostingClassifier(
                 learning_rate=lr, max_leaf_nodes=nodes, max_iter=200, early_stopping=False,
                 l2_regularization=1.0, random_state=seed))
            for lr in (0.05, 0.1) for nodes in (15, 31)]


def run_all(data, n_classes, seed, log=print):
    """data: {"folds": [(fit, val)], "train", "test"}, each part (x dict,
    flows, y). Tree settings are chosen by the mean validation macro-F1
    over the folds (over the classes each fold holds). Returns [(name,
    settings, held-out predictions)] in table order."""
    out = []
    ytr = data["train"][2]
    out.append(("majority class", "", np.full(len(data["test"][2]), int(np.bincount(ytr).argmax()))))
    out.append(("port rule (protocol, server port)", "",
                PortRule().fit(data["train"][1], ytr).predict(data["test"][1])))
    for name, feats, kind in (("random forest, sizes + iat", stat_features, "forest"),
                              (f"random forest, sizes + iat + {BYTES} bytes of {PACKETS} packets",
                               byte_features, "forest"),
                              (f"gradient boosting, sizes + iat + {BYTES} bytes of {PACKETS} packets",
                               byte_features, "boosting"),
                              (f"random forest, sizes + iat + {BYTES} bytes of {PACKETS} packets + "
                               "protocol and server port", byte_port_features, "forest")):
        folds = [(feats(fi[0]), fi[2], feats(va[0]), va[2]) for fi, va in data["folds"]]
        trials = []
        for desc, make in tree_grid(kind, seed):
            scores = [macro_f1(yv, make().fit(xf, yf).predict(xv), n_classes, present_only=True)[0]
                      for xf, yf, xv, yv in folds]
            trials.append((float(np.mean(scores)), desc, make))
            log(f"  {name}: {desc}: mean validation macro-F1 {trials[-1][0]:.3f}")
        f1, desc, make = max(trials, key=lambda t: t[0])
        m = make().fit(feats(data["train"][0]), ytr)
        out.append((name, f"{desc} (mean validation macro-F1 {f1:.3f})", m.predict(feats(data["test"][0]))))
    return out


def bootstrap_diff(files, y, pred_a, pred_b, n_classes, rounds=1000, seed=0):
    """95 % interval of macro-F1(a) - macro-F1(b) over held-out files drawn
    with replacement (macro over the classes present in each draw), and the
    share of draws where a is ahead."""
    rng = np.random.default_rng(seed)
    names = sorted(set(files))
    idx_of = {f: np.flatnonzero(np.asarray(files) == f) for f in names}
    diffs = []
    for _ in range(rounds):
        pick = rng.integers(0, len(names), len(names))
        idx = np.concatenate([idx_of[names[i]] for i in pick])
        a = macro_f1(y[idx], pred_a[idx], n_classes, present_only=True)[0]
        b = macro_f1(y[idx], pred_b[idx], n_classes, present_only=True)[0]
        diffs.append(a - b)
    d = np.array(diffs)
    return float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)), float((d > 0).mean())

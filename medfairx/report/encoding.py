"""Attribute encoding: how well a linear probe reads the sensitive attribute from a model's features.

The question of Glocker et al. ("Algorithmic encoding of protected characteristics in chest
X-ray disease detection models", eBioMedicine 2023) and of subgroup separability (Jones et
al., "The role of subgroup separability in group-fair medical image classification", MICCAI
2023): if the attribute can be read off the features, a classifier can use it as a shortcut.

:func:`probe_attribute` fits a standardised logistic regression (scikit-learn, L2) from the
features to the group code on train, chooses its inverse regularisation strength ``C`` on
validation (by AUC), and scores it on test: AUC (binary; one-vs-rest macro for more than
two groups) and balanced accuracy, each with a percentile bootstrap CI over test samples
resampled within each group (:class:`medfairx.metrics.bootstrap.StratifiedBootstrap`,
seeded). Samples outside every group (code ``-1``) are left out.

:func:`encoding_table` probes the runs of a board: (a) the frozen encoder's cached
features (one row per dataset, encoder and grouping), and (b) each run's penultimate
features — for a frozen-protocol run with a ``linear`` head these are the frozen features
themselves (row (a), not recomputed); for an ``mlp`` head the hidden layer's activations and
for an end-to-end run the encoder's pooled output, both computed from the run's saved
model (``state.pt``, written by ``medfairx bench --save-state``). Runs without one are
listed as not probed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from medfairx.metrics.basic import auc

PROBE_CS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
"""Inverse regularisation strengths the probe chooses from on validation."""
PROBE_N_BOOT = 1000
ENCODER_SOURCE = "frozen encoder"
PENULTIMATE_SOURCE = "penultimate"
ENCODING_COLUMNS = ["dataset", "grouping", "source", "method", "seed", "run_id", "features", "metric", "value",
                    "ci_low", "ci_high", "balanced_accuracy", "ba_ci_low", "ba_ci_high", "C", "n_train", "n_test",
                    "n_groups", "note"]

Split = tuple[np.ndarray, np.ndarray]


@dataclass
class ProbeResult:
    """Test scores of one attribute probe.

    Attributes:
        metric: ``auc`` (two groups) or ``auc_ovr_macro``.
        value, ci_low, ci_high: the AUC and its bootstrap CI.
        balanced_accuracy, ba_ci_low, ba_ci_high: balanced accuracy and its CI.
        C: the inverse regularisation strength chosen on validation.
        n_train, n_test, n_groups: samples fitted on and scored, groups.
    """

    metric: str
    value: float
    ci_low: float
    ci_high: float
    balanced_accuracy: float
    ba_ci_low: float
    ba_ci_high: float
    C: float
    n_train: int
    n_test: int
    n_groups: int


def attribute_auc(groups: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """AUC of predicting the group: binary, or the macro mean of one-vs-rest AUCs.

    Args:
        groups: true group code per sample.
        proba: ``(N, K)`` probabilities, column ``k`` for ``classes[k]``.
        classes: the group codes of the columns.
    """
    if len(classes) == 2:
        return auc(groups == classes[1], proba[:, 1])
    values = [auc(groups == c, proba[:, k]) for k, c in enumerate(classes)]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def balanced_accuracy(groups: np.ndarray, predicted: np.ndarray) -> float:
    """Mean per-group recall over the groups present in ``groups``."""
    recalls = [float(np.mean(predicted[groups == c] == c)) for c in np.unique(groups)]
    return float(np.mean(recalls)) if recalls else float("nan")


def _fit(x: np.ndarray, a: np.ndarray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(x, a)


def _known(split: Split) -> Split:
    x, a = split
    keep = np.asarray(a) >= 0
    return np.asarray(x, dtype=np.float64)[keep], np.asarray(a, dtype=np.int64)[keep]


def probe_attribute(train: Split, val: Split, test: Split, *, cs: Sequence[float] = PROBE_CS,
                    n_boot: int = PROBE_N_BOOT, seed: int = 0, ci: float = 0.95) -> ProbeResult:
    """Fit the probe on ``train``, choose ``C`` on ``val``, score it on ``test``.

    Args:
        train, val, test: ``(features (N, D), group codes (N,))``; codes ``< 0`` are left out.
        cs: the inverse regularisation strengths tried.
        n_boot: bootstrap replicates of the test CIs (0: NaN CIs).
        seed: bootstrap seed.
        ci: coverage of the intervals.

    Raises:
        ValueError: fewer than two groups in train.
    """
    from medfairx.metrics.bootstrap import StratifiedBootstrap

    (xt, at), (xv, av), (xs, as_) = _known(train), _known(val), _known(test)
    if np.unique(at).size < 2:
        raise ValueError("fewer than two groups in the train split")
    best, best_auc = None, -np.inf
    for c in cs:  # ties keep the stronger regularisation (the smaller C, tried first)
        model = _fit(xt, at, c)
        value = attribute_auc(av, model.predict_proba(xv), model.classes_)
        if np.isfinite(value) and value > best_auc:
            best, best_auc = (c, model), value
    c, model = best if best is not None else (cs[0], _fit(xt, at, cs[0]))
    proba, classes = model.predict_proba(xs), model.classes_
    predicted = classes[np.argmax(proba, axis=1)]
    point_auc, point_ba = attribute_auc(as_, proba, classes), balanced_accuracy(as_, predicted)
    reps = np.full((n_boot, 2), np.nan)
    sampler = StratifiedBootstrap(as_, n_boot, seed)
    for b in range(n_boot):
        idx = sampler.indices(b)
        reps[b] = attribute_auc(as_[idx], proba[idx], classes), balanced_accuracy(as_[idx], predicted[idx])
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    if n_boot:
        (auc_lo, ba_lo), (auc_hi, ba_hi) = np.nanpercentile(reps, q, axis=0)
    else:
        auc_lo = ba_lo = auc_hi = ba_hi = float("nan")
    return ProbeResult("auc" if len(classes) == 2 else "auc_ovr_macro", point_auc, float(auc_lo), float(auc_hi),
                       point_ba, float(ba_lo), float(ba_hi), float(c), int(at.size), int(as_.size), int(len(classes)))


def penultimate(method: Any, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray | None:
    """The features a fitted method's classifier head reads (``model_.encoder``), or ``None``.

    ``None`` when the method has no :class:`~medfairx.methods.backbones.ClassifierNet`
    (e.g. ``knn``). Inputs are converted as the trainer converts them.
    """
    import torch

    from medfairx.methods.backbones import ClassifierNet
    from medfairx.methods.device import images_to_float

    model = getattr(method, "model_", None)
    if not isinstance(model, ClassifierNet):
        return None
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images_to_float(torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device))
            out.append(model.encoder(x).float().reshape(len(x), -1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, model.feature_dim), np.float32)


# --- a board's runs ----------------------------------------------------------------------


def _row(dataset: str, grouping: str, source: str, features: str, result: ProbeResult | None = None, *,
         method: str = "", seed: Any = "", run_id: str = "", note: str = "") -> dict[str, Any]:
    row = {"dataset": dataset, "grouping": grouping, "source": source, "method": method, "seed": seed,
           "run_id": run_id, "features": features, "note": note}
    if result is not None:
        row.update(asdict(result))
    return row


def _probe_rows(splits: Callable[[str, str], Split], groupings: Sequence[str], base: dict[str, Any],
                n_boot: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for g in groupings:
        try:
            result = probe_attribute(splits("train", g), splits("val", g), splits("test", g), n_boot=n_boot, seed=seed)
            rows.append(_row(grouping=g, result=result, **base))
        except Exception as exc:  # noqa: BLE001 - one grouping that cannot be probed is listed, the rest goes on
            rows.append(_row(grouping=g, note=f"not probed: {type(exc).__name__}: {exc}", **base))
    return rows


def _describe_encoder(protocol: dict[str, Any]) -> str:
    kind = "pretrained" if protocol.get("pretrained") else "random init"
    dim = protocol.get("feature_dim")
    return f"{protocol.get('encoder')} ({kind}){f', {dim}-d' if dim else ''}"


def encoding_table(runs: Sequence[Any], *, catalogue: Any = None, n_boot: int = PROBE_N_BOOT, seed: int = 0,
                   echo: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Attribute-probe scores of a board's runs (columns :data:`ENCODING_COLUMNS`).

    Args:
        runs: the board's :class:`~medfairx.store.StoredRun` s (finished classification
            runs are probed; others are ignored).
        catalogue: where the datasets and their caches are (default: the current catalogue).
        n_boot: bootstrap replicates of each CI.
        seed: bootstrap seed.
        echo: warnings (a dataset that cannot be loaded).

    Returns:
        One row per (dataset, encoder, grouping) for the frozen features and one per (run,
        grouping) for penultimate features computed from a saved model; a row whose ``note``
        starts ``not probed`` says why there is no value.
    """
    from medfairx.data.dataset import _catalogue, load_dataset
    from medfairx.runner.protocols import dataset_for_run

    ok = [r for r in runs if r.ok and r.task == "classification"]
    if not ok:
        result: pd.DataFrame = pd.DataFrame(columns=ENCODING_COLUMNS)
        return result
    try:
        cat = _catalogue(catalogue)
    except Exception as exc:  # noqa: BLE001 - the analysis is extra; the board is written without it
        if echo is not None:
            echo(f"warning: attribute encoding not analysed (catalogue: {exc})")
        result = pd.DataFrame(columns=ENCODING_COLUMNS)
        return result
    loaded: dict[str, Any] = {}

    def dataset(name: str) -> Any:
        if name not in loaded:
            loaded[name] = load_dataset(cat, name)
        return loaded[name]

    rows: list[dict[str, Any]] = []
    encoders: dict[tuple[str, str], tuple[dict[str, Any], set[str]]] = {}
    for run in ok:
        protocol = run.record.get("protocol") or {}
        groupings = [str(g) for g in run.record.get("groupings") or []]
        if protocol.get("embeddings"):
            entry = encoders.setdefault((str(run.record["dataset"]), str(protocol["embeddings"])), (protocol, set()))
            entry[1].update(groupings)
    for (name, _key), (protocol, wanted) in sorted(encoders.items()):
        base: dict[str, Any] = {"dataset": name, "source": ENCODER_SOURCE, "features": _describe_encoder(protocol)}
        try:
            frozen = dataset_for_run(dataset(name), protocol, cat.cache_path)
        except Exception as exc:  # noqa: BLE001 - an unprobed encoder is a row of the table
            rows += [_row(grouping=g, note=f"not probed: {exc}", **base) for g in sorted(wanted)]
            continue
        rows += _probe_rows(_splits_of(frozen), sorted(wanted), base, n_boot, seed)
    for run in ok:
        rows += _run_rows(run, dataset, cat, n_boot, seed)
    result = pd.DataFrame(rows).reindex(columns=ENCODING_COLUMNS)
    return result


def _splits_of(ds: Any, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> Callable[[str, str], Split]:
    cache: dict[str, np.ndarray] = {}

    def splits(split: str, grouping: str) -> Split:
        data = ds.task_data(split, grouping)
        if split not in cache:
            cache[split] = data.images if transform is None else transform(data.images)
        return cache[split].reshape(len(data), -1), data.groups

    return splits


def _run_rows(run: Any, dataset: Callable[[str], Any], cat: Any, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """Penultimate-feature probes of one run (from its ``state.pt``), or why there are none."""
    from medfairx.runner.protocols import dataset_for_run
    from medfairx.runner.state import STATE_FILE, load_state

    rec = run.record
    protocol = rec.get("protocol") or {}
    base = {"dataset": str(rec["dataset"]), "source": PENULTIMATE_SOURCE, "method": str(rec["method"]),
            "seed": rec.get("seed"), "run_id": str(rec.get("run_id") or run.path.name)}
    groupings = [str(g) for g in rec.get("groupings") or []]
    if protocol.get("embeddings") and rec.get("backbone") == "linear":
        return []  # a linear head reads the frozen features themselves: the frozen-encoder rows
    if not (run.path / STATE_FILE).is_file():
        return [_row(grouping="", features="", note="not probed: no saved model (bench --save-state)", **base)]
    try:
        method, _ctx = load_state(run.path)
        ds = dataset_for_run(dataset(base["dataset"]), protocol, cat.cache_path)
    except Exception as exc:  # noqa: BLE001 - an unprobed run is a row of the table
        return [_row(grouping="", features="", note=f"not probed: {exc}", **base)]
    first = penultimate(method, ds.task_data("test").images[:1])
    if first is None:
        return [_row(grouping="", features="", note="not probed: the method has no classifier features", **base)]
    head = "hidden layer" if protocol.get("embeddings") else "encoder output"
    dim = int(first.shape[1])
    base["features"] = f"{rec.get('backbone')} {head}, {dim}-d"

    def features_of(images: np.ndarray) -> np.ndarray:
        features = penultimate(method, images)
        assert features is not None, "the first batch showed the method has classifier features"
        return features

    return _probe_rows(_splits_of(ds, features_of), groupings, base, n_boot, seed)


__all__ = ["ENCODER_SOURCE", "ENCODING_COLUMNS", "PENULTIMATE_SOURCE", "PROBE_CS", "ProbeResult", "attribute_auc",
           "balanced_accuracy", "encoding_table", "penultimate", "probe_attribute"]

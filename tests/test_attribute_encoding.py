"""Attribute encoding (linear probes of the sensitive attribute) and the protocols comparison page."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medfairx.report.encoding import probe_attribute


def _split(rng: np.random.Generator, n: int, signal: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, k, n)
    x = rng.normal(size=(n, 16))
    x[:, 0] += signal * a  # the attribute shifts one feature
    return x, a


@pytest.mark.parametrize("k", [2, 3])
def test_probe_reads_a_planted_attribute_and_matches_sklearn(k: int) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(k)
    for signal in (2.0, 0.0):
        train, val, test = (_split(rng, n, signal, k) for n in (600, 200, 400))
        res = probe_attribute(train, val, test, n_boot=200, seed=0)
        # the same probe fitted independently, scored with scikit-learn's metrics on the same split
        scaler = StandardScaler().fit(train[0])
        ref = LogisticRegression(C=res.C, max_iter=1000).fit(scaler.transform(train[0]), train[1])
        proba = ref.predict_proba(scaler.transform(test[0]))
        ref_auc = roc_auc_score(test[1], proba[:, 1]) if k == 2 else roc_auc_score(test[1], proba, multi_class="ovr")
        assert res.value == pytest.approx(ref_auc, abs=1e-6)
        assert res.balanced_accuracy == pytest.approx(balanced_accuracy_score(test[1], proba.argmax(1)), abs=1e-9)
        assert res.metric == ("auc" if k == 2 else "auc_ovr_macro") and res.n_groups == k and res.n_test == 400
        assert res.ci_low <= res.value <= res.ci_high
        if signal:
            assert res.value > 0.8 and res.ci_low > 0.7
        else:
            assert abs(res.value - 0.5) < 0.07 and res.ci_low < 0.5 < res.ci_high + 0.02


def test_samples_outside_every_group_are_left_out() -> None:
    rng = np.random.default_rng(0)
    train, val, test = (_split(rng, n, 2.0, 2) for n in (300, 100, 200))
    x, a = test
    a = a.copy()
    a[:50] = -1
    res = probe_attribute(train, val, (x, a), n_boot=0)
    assert res.n_test == 150 and np.isnan(res.ci_low)


CATALOGUE = """\
version: 1
include: [embedded]
cache_dir: cache
datasets:
  syn_a: &syn
    adapter: synthetic
    task: classification
    image_size: 32
    split: {{train: 0.6, val: 0.2, test: 0.2, seed: 0}}
    options: {{seed: 0, n_samples: 400, spatial_dims: 2, channels: 1}}
    groupings:
      group: {{column: group}}
      site: {{column: site}}
  syn_b: *syn
suites:
  end2end:
    datasets: {{syn_a: [group]}}
    methods: [erm]
    params: test
    backbones: {{classification: tiny_cnn}}
    recipe: {recipe}
  frozen:
    datasets: {{syn_b: [group, site]}}
    methods: [erm]
    params: test
    protocol: linear_probe
    encoder: {{backbone: tiny_cnn, pretrained: false}}
    recipe: {recipe}
"""


def test_report_shows_attribute_encoding_and_protocols_side_by_side(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from medfairx.config import load_catalogue
    from medfairx.plugins import get_host
    from medfairx.report.render import fmt_num
    from medfairx.report.writer import write_report
    from medfairx.runner.bench import BenchOptions, run_bench

    path = tmp_path / "datasets.yaml"
    path.write_text(CATALOGUE.format(recipe="{epochs: 1, batch_size: 32}"))
    monkeypatch.setenv("MEDFAIRX_CONFIG", str(path))
    cat = load_catalogue(path)
    for suite, save in (("end2end", True), ("frozen", False)):
        result = run_bench(cat, BenchOptions(suite=suite, out=tmp_path / "runs", save_state=save),
                           get_host(), lambda s: None)
        assert result.done and not result.failed
    out = tmp_path / "board"
    write_report([tmp_path / "runs" / "end2end", tmp_path / "runs" / "frozen"], out, echo=lambda s: None, n_boot=50)

    enc = pd.read_csv(out / "encoding.csv")
    frozen = enc[(enc["source"] == "frozen encoder") & (enc["dataset"] == "syn_b")]
    assert set(frozen["grouping"]) == {"group", "site"} and frozen["value"].between(0, 1).all()
    assert set(frozen["metric"]) == {"auc", "auc_ovr_macro"}  # two groups, three sites
    pen = enc[(enc["source"] == "penultimate") & (enc["dataset"] == "syn_a")]
    assert len(pen) == 1 and pen["method"].iloc[0] == "erm" and np.isfinite(pen["value"].iloc[0])
    assert "64-d" in pen["features"].iloc[0]
    assert not (enc["dataset"].eq("syn_b") & enc["source"].eq("penultimate")).any()  # linear head: = frozen rows
    page = (out / "encoding.html").read_text()
    assert "Attribute AUC" in page and "frozen encoder" in page and "not recomputed" in page
    block = (out / "syn_b__site.html").read_text()
    assert 'id="encoding"' in block and fmt_num(frozen.set_index("grouping").loc["site", "value"]) in block
    index = (out / "index.html").read_text()
    assert 'href="encoding.html"' in index and 'href="protocols.html"' in index

    results = pd.read_csv(out / "results.csv")
    cmp = (out / "protocols.html").read_text()
    assert "syn_a (32 px; end to end, tiny_cnn)" in cmp
    assert "syn_b (32 px; linear_probe, tiny_cnn (random init), head linear)" in cmp
    section = cmp[cmp.index("<h2>erm"):]
    rows = re.findall(r"<tr><td>group</td><td>(\w+)</td>(.*?)</tr>", section, re.S)
    assert rows, section[:500]
    for grp, cells in rows:
        got = results[(results["method"] == "erm") & (results["grouping"] == "group") & (results["metric"] == "auc")
                      & (results["scope"] == ("overall" if grp == "overall" else "group"))
                      & (results["group"].fillna("") == ("" if grp == "overall" else grp))
                      & (results["strategy"] == "final")]
        assert set(got["dataset"]) == {"syn_a", "syn_b"}
        for d in ("syn_a", "syn_b"):
            r = got[got["dataset"] == d].iloc[0]
            assert fmt_num(r["value"]) in cells and f"[{fmt_num(r['ci_low'])}, {fmt_num(r['ci_high'])}]" in cells

"""HTML leaderboards rendered from fabricated results tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pytest
from markupsafe import escape
from scipy import stats

from medfairx.errors import ConfigError
from medfairx.report.leaderboard import (
    block_page_name,
    build_leaderboard,
    choose_cd_metrics,
    method_page_name,
    write_root_index,
)
from medfairx.report.render import make_environment, render_page
from medfairx.report.sample import RESULT_COLUMNS, synthetic_failures, synthetic_results
from medfairx.stats.cd import NON_INDEPENDENCE, TOO_FEW_BLOCKS
from medfairx.stats.ranking import block_matrix

EVIL = "evil<script>alert(1)</script>"
BLOCKS = (("ham", "sex"), ("ham", "age"), ("fitz", "skin"), ("ddi", "skin"), ("papila", "sex"))
METHODS = {"erm": 0.0, "groupdro": 0.02, EVIL: 0.05, "oracle": 0.1}


def _results() -> pd.DataFrame:
    cls = synthetic_results(suite="s1", blocks=BLOCKS, methods=METHODS, seeds=(0, 1))
    seg = synthetic_results(suite="s1", blocks=(("fairseg", "race"),), methods={"erm": 0.0, "oracle": 0.1},
                            seeds=(0, 1), task="segmentation", random_state=3)
    return pd.concat([cls, seg], ignore_index=True)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], pd.DataFrame]:
    out = tmp_path_factory.mktemp("lb") / "s1"
    results = _results()
    failures = synthetic_failures([("groupdro", "ham", "sex", 2, "TrainingError", "NaN loss <b>at</b> epoch 3")])
    methods = {
        EVIL: {"summary": "A summary with <script>alert('s')</script>", "reference": "Doe 2024",
               "tags": {"uses_groups_in_fit": True, "uses_groups_in_predict": True},
               "origin": {"plugin": "evil", "dist": "medfairx-evil", "version": "9.9"}},
        "erm": {"summary": "Empirical risk minimisation", "tags": {"uses_groups_in_fit": False},
                "plugin": "medfairx.methods", "dist": "medfairx", "version": "0.1.0"},
    }
    paths = build_leaderboard(results, out, suite="s1", failures=failures, methods=methods,
                              provenance={"plugins": [{"name": "medfairx", "version": "0.1.0"}]})
    return out, paths, results


def test_files_written(board: tuple[Path, list[Path], pd.DataFrame]) -> None:
    out, paths, results = board
    names = {p.name for p in paths}
    assert all(p.is_file() for p in paths)
    expected = {"index.html", "results.csv", "failures.csv", "provenance.json"}
    expected |= {block_page_name(d, g) for d, g in BLOCKS} | {"fairseg__race.html"}
    expected |= {method_page_name(m) for m in METHODS}
    for strategy in ("overall", "worst_group"):
        expected |= {f"cd-{strategy}-{m}.svg" for m in ("auc", "worst_group_auc", "auc_gap")}
    assert expected <= names, expected - names
    assert "ham__sex.html" in names
    assert pd.read_csv(out / "results.csv").shape[0] == len(results)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["suite"] == "s1" and prov["plugins"][0]["name"] == "medfairx"
    svg = (out / "cd-overall-auc.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg


def test_index_content(board: tuple[Path, list[Path], pd.DataFrame]) -> None:
    out, _, results = board
    html = (out / "index.html").read_text()
    assert html.count("<svg") >= 6  # CD diagrams inline: 3 metrics × 2 strategies
    assert NON_INDEPENDENCE in html
    # Friedman statistic on the page equals scipy's on the seed-averaged blocks × methods matrix
    bm = block_matrix(results, "auc", strategy="overall")
    ref = stats.friedmanchisquare(*(bm.matrix[c] for c in bm.matrix.columns))
    assert f"Friedman χ² = <strong>{ref.statistic:.3f}</strong>" in html
    assert "N = 5 blocks from 4 dataset(s)" in html
    for d, g in BLOCKS:
        assert f'href="{block_page_name(d, g)}"' in html
    for m in METHODS:
        assert f'href="{method_page_name(m)}"' in html
    assert "TrainingError" in html and "NaN loss &lt;b&gt;at&lt;/b&gt; epoch 3" in html
    assert 'id="strategy-select"' in html and 'data-strategy="worst_group"' in html
    # the segmentation block has a single block: rank table with the reason, no diagram
    assert str(escape(TOO_FEW_BLOCKS.format(n=1, min_blocks=5))) in html
    assert "uses attribute at test time" in html


def test_script_names_are_escaped(board: tuple[Path, list[Path], pd.DataFrame]) -> None:
    out, paths, _ = board
    for p in paths:
        if p.suffix in (".html", ".svg"):
            text = p.read_text()
            assert "<script>alert" not in text, p.name
            # the only <script> element is our own inline sortable.js
            assert len(re.findall(r"<script", text)) == (1 if p.suffix == ".html" else 0), p.name
    assert "evil&lt;script&gt;alert(1)&lt;/script&gt;" in (out / "index.html").read_text()
    method_page = out / method_page_name(EVIL)
    assert "<" not in method_page.name and method_page.is_file()
    page = method_page.read_text()
    assert "A summary with &lt;script&gt;" in page and "medfairx-evil" in page and "9.9" in page
    assert "uses attribute at test time" in page


def test_block_pages(board: tuple[Path, list[Path], pd.DataFrame]) -> None:
    out, _, _ = board
    html = (out / "ham__sex.html").read_text()
    assert html.count("<svg") >= 4  # Pareto scatter and group bars for both strategies
    assert "Fairness–utility trade-off" in html and "per group" in html
    assert "95% CI [" in html and " ± " in html
    # group sizes and prevalence beside every per-group number
    assert re.search(r"<td>a</td><td class=\"num\" data-sort=\"40.0\">40</td><td class=\"num\" "
                     r"data-sort=\"0.2\">0.200</td>", html)
    assert "worst_group_auc" in html and "auc_gap" in html and "es_auc" in html
    assert "NaN loss" in html  # this block's failure
    seg = (out / "fairseg__race.html").read_text()
    assert "Hidden failures per group" in seg
    assert seg.index("dice_p10") < seg.index("tail_dice") < seg.index("fail_rate")


def test_root_index(board: tuple[Path, list[Path], pd.DataFrame], tmp_path: Path) -> None:
    out, _, _ = board
    root = write_root_index(out.parent)
    html = root.read_text()
    assert 'href="s1/index.html"' in html
    (tmp_path / "empty_suite").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "index.html").write_text("<html></html>")
    html2 = write_root_index(tmp_path).read_text()
    assert 'href="other/index.html"' in html2 and "empty_suite" not in html2


def test_environment_is_strict_and_escapes() -> None:
    env = make_environment()
    assert env.autoescape is True or env.autoescape(None) is True
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing_variable }}").render()
    assert env.from_string("{{ x }}").render(x="<script>") == "&lt;script&gt;"
    with pytest.raises(jinja2.UndefinedError):
        render_page(env, "method.html", Path("/nonexistent/never-written.html"), suite="s")


def test_choose_cd_metrics() -> None:
    agg = pd.DataFrame({"metric": ["auc", "worst_group_auc", "auc_gap", "es_auc", "dice", "dice_gap"],
                        "scope": ["overall", "summary", "summary", "summary", "overall", "summary"]})
    chosen = [m for m, _ in choose_cd_metrics(agg)]
    assert chosen == ["auc", "worst_group_auc", "auc_gap", "dice", "dice_gap"]


def test_bad_input_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lacks column"):
        build_leaderboard(pd.DataFrame({"method": ["a"]}), tmp_path, suite="x")
    few = synthetic_results(blocks=BLOCKS[:3], methods={"a": 0.0, "b": 0.1, "c": 0.2}, seeds=(0,),
                            strategies=("overall",))
    build_leaderboard(few, tmp_path / "few", suite="few")
    html = (tmp_path / "few" / "index.html").read_text()
    assert str(escape(TOO_FEW_BLOCKS.format(n=3, min_blocks=5))) in html
    assert not list((tmp_path / "few").glob("cd-*.svg"))
    # every run failed: the pages still list the failures
    fails = synthetic_failures([("crashy", "ham", "sex", 0, "RuntimeError", "boom")])
    empty = pd.DataFrame(columns=list(RESULT_COLUMNS))
    names = {p.name for p in build_leaderboard(empty, tmp_path / "none", suite="none", failures=fails)}
    assert {"index.html", "ham__sex.html", "method-crashy.html", "failures.csv"} <= names
    assert "boom" in (tmp_path / "none" / "index.html").read_text()


def test_reporters_registered(tmp_path: Path) -> None:
    from medfairx.default_plugins import reporters
    from medfairx.specs import ReporterSpec

    specs: list[ReporterSpec] = []
    reporters.register_reporters(register=specs.append)
    assert {s.name for s in specs} == {"html", "csv"}
    assert all(isinstance(s.target, str) for s in specs)  # lazy targets
    csv = next(s for s in specs if s.name == "csv").load()
    res = synthetic_results(blocks=BLOCKS[:1], seeds=(0,), strategies=("overall",))
    paths = csv(res, tmp_path)
    assert [p.name for p in paths] == ["results.csv"]
    assert np.isclose(pd.read_csv(paths[0])["value"].sum(), res["value"].sum())
    assert callable(next(s for s in specs if s.name == "html").load())


def test_runs_from_several_devices_are_disclosed(board: tuple[Path, list[Path], pd.DataFrame], tmp_path: Path) -> None:
    from medfairx.cli.report_cmd import provenance

    _, _, results = board
    records = [{"method": "erm", "device": "cpu", "dataset": "d", "seed": 0},
               {"method": "erm", "device": "cuda", "dataset": "d", "seed": 1},
               {"method": "spare", "device": "cuda", "dataset": "d", "seed": 0}]
    prov = provenance(records)
    assert prov["devices_by_method"] == {"erm": {"cpu": 1, "cuda": 1}, "spare": {"cuda": 1}}
    build_leaderboard(results, tmp_path / "mixed", suite="s1", provenance=prov)
    page = (tmp_path / "mixed" / "index.html").read_text()
    assert 'id="mixed-devices"' in page and "erm: cpu ×1, cuda ×1" in page
    # one device: no note and no per-method table
    single = provenance(records[:1])
    assert "devices_by_method" not in single
    build_leaderboard(results, tmp_path / "single", suite="s1", provenance=single)
    assert 'id="mixed-devices"' not in (tmp_path / "single" / "index.html").read_text()


def test_card_caveats_and_group_sizes_on_every_page(tmp_path: Path) -> None:
    """A dataset whose card has caveats (IXI: age and sex confounded) carries them on the index,
    its block pages and the method pages; every page shows the group sizes."""
    from medfairx.data.cards import CARDS

    results = synthetic_results(suite="s1", blocks=(("ixi", "sex"), ("ham", "age")), methods={"erm": 0.0, "dmoe": 0.05},
                                seeds=(0,), task="segmentation")
    out = tmp_path / "board"
    build_leaderboard(results, out, suite="s1")
    confound = "the &gt; 60 band is 68% female"
    assert any("68% female" in c for c in CARDS["ixi"].caveats)
    index = (out / "index.html").read_text()
    assert confound in index and index.count('class="note caveat"') == len(CARDS["ixi"].caveats)
    assert confound in (out / block_page_name("ixi", "sex")).read_text()
    assert confound not in (out / block_page_name("ham", "age")).read_text()
    assert confound in (out / method_page_name("dmoe")).read_text()
    sizes = results.loc[(results["dataset"] == "ixi") & (results["scope"] == "group")].groupby("group")["n"].first()
    shown = " · ".join(f"{g} {n}" for g, n in sizes.items())
    assert f"<td>{shown}</td>" in index and f"(groups, test n: {shown})" in (out / method_page_name("dmoe")).read_text()
    # an explicit mapping replaces the cards' caveats
    build_leaderboard(results, tmp_path / "none", suite="s1", caveats={})
    assert "caveat" not in (tmp_path / "none" / "index.html").read_text()

"""Data cards (report pages) and ``medfairx datasets check`` on the embedded synthetic dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from medfairx.cli.datasets_cmd import datasets
from medfairx.cli.report_cmd import write_cards
from medfairx.config import load_catalogue
from medfairx.data.dataset import data_card, describe_dataset, load_dataset
from medfairx.report.datacards import write_data_cards
from medfairx.report.leaderboard import build_leaderboard
from medfairx.report.sample import synthetic_results
from medfairx.store import write_data_card

BROKEN_YAML = """\
version: 1
include: [embedded]
datasets:
  broken:
    adapter: ham10000
    root: {root}
    groupings:
      sex: {{column: sex}}
"""


@pytest.fixture(scope="module")
def catalogue_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded catalogue plus ``broken`` (a HAM10000 entry whose root does not exist)."""
    d = tmp_path_factory.mktemp("cat")
    path = d / "datasets.yaml"
    path.write_text(BROKEN_YAML.format(root=d / "does-not-exist"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def described(catalogue_file: Path) -> dict:
    return describe_dataset(load_catalogue(catalogue_file), "synthetic_cls")


def _cells(html: str) -> list[str]:
    return re.findall(r"<td[^>]*>([^<]*)</td>", html)


def _stored(catalogue_file: Path, *names: str) -> dict[str, dict]:
    return {n: data_card(load_dataset(catalogue_file, n)) for n in names}


def test_page_has_card_and_group_sizes(catalogue_file: Path, described: dict, tmp_path: Path) -> None:
    pages = write_data_cards(catalogue_file, ["synthetic_cls"], tmp_path, stored=_stored(catalogue_file, "synthetic_cls"),
                             suite="s1")
    assert [p.name for p in pages] == ["data-synthetic_cls.html"]
    html = pages[0].read_text(encoding="utf-8")
    assert "CC0-1.0" in html and described["split_hash"] in html and described["revision"] in html
    assert "negative, positive" in html and 'href="index.html"' in html
    for gname, g in described["groupings"].items():
        assert f'data-grouping="{gname}"' in html
        table = html.split(f'data-grouping="{gname}"', 1)[1].split("</table>", 1)[0]
        cells = _cells(table)
        for label, st in g["groups"].items():
            i = cells.index(str(label).replace("<", "&lt;").replace(">", "&gt;"))
            assert cells[i + 1] == str(st["n"]) and cells[i + 2] == str(st["positives"])
            assert cells[i + 4: i + 4 + len(st["splits"])] == [str(v) for v in st["splits"].values()]
    assert "Patient-disjoint: <strong>yes</strong>" in html


def test_a_dataset_without_a_recorded_card_gets_a_page_saying_how_to_record_one(catalogue_file: Path,
                                                                                  tmp_path: Path) -> None:
    pages = write_data_cards(catalogue_file, ["broken", "no_such_dataset"], tmp_path, stored={}, suite="s1")
    broken = pages[0].read_text(encoding="utf-8")
    assert "could not be described" in broken and "no data card for &#39;broken&#39;" in broken
    assert "medfairx bench --suite s1" in broken
    assert "CC BY-NC-SA 4.0" in broken  # the static card of the adapter is still shown
    assert "No card: the dataset is not in the current catalogue" in pages[1].read_text(encoding="utf-8")


def test_report_links_cards_and_survives_missing_data(monkeypatch: pytest.MonkeyPatch,
                                                      catalogue_file: Path, tmp_path: Path) -> None:
    monkeypatch.chdir(catalogue_file.parent)  # load_catalogue(None) reads ./datasets.yaml
    monkeypatch.delenv("MEDFAIRX_CONFIG", raising=False)
    records = [{"dataset": "synthetic_cls", "dataset_revision": "old", "split_hash": "x"},
               {"dataset": "broken"}]
    out, store = tmp_path / "s1", tmp_path / "runs" / "s1"
    write_data_card(store, "synthetic_cls", _stored(catalogue_file, "synthetic_cls")["synthetic_cls"])
    cards = write_cards(records, out, suite="s1", stores=[store], echo=lambda m: None)
    assert cards == [("broken", "data-broken.html"), ("synthetic_cls", "data-synthetic_cls.html")]
    assert "The runs used revision old" in (out / "data-synthetic_cls.html").read_text(encoding="utf-8")
    results = synthetic_results(suite="s1", blocks=(("synthetic_cls", "group"), ("synthetic_cls", "site")),
                                methods={"erm": 0.0, "oracle": 0.1}, seeds=(0,))
    build_leaderboard(results, out, suite="s1", data_cards=cards)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert '<a href="data-synthetic_cls.html">synthetic_cls</a>' in index
    assert '<a href="data-broken.html">broken</a>' in index


def test_cli_check_prints_group_sizes(catalogue_file: Path, described: dict) -> None:
    r = CliRunner().invoke(datasets, ["check", "synthetic_cls", "--config", str(catalogue_file)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert any(line.strip() == f"rows (samples kept): {described['samples']}" for line in lines)
    assert "patient-disjoint: yes" in r.output
    for gname, g in described["groupings"].items():
        assert f"grouping {gname} (outside every group: {g['outside']}" in r.output
        for label, st in g["groups"].items():
            row = [line.split() for line in lines if line.split()[:1] == [label]]
            assert [str(st["n"]), str(st["positives"])] in [x[1:3] for x in row], (label, row)
    assert "OK: no problem found." in r.output


def test_cli_check_json(catalogue_file: Path, described: dict) -> None:
    r = CliRunner().invoke(datasets, ["check", "synthetic_cls", "--config", str(catalogue_file), "--json"])
    assert r.exit_code == 0
    data = json.loads(r.output)
    assert data["groupings"] == described["groupings"] and data["card"]["license"].startswith("CC0")


def test_cli_check_missing_root_exits_1(catalogue_file: Path) -> None:
    r = CliRunner().invoke(datasets, ["check", "broken", "--config", str(catalogue_file)])
    assert r.exit_code == 1
    assert "dataset 'broken' cannot be read" in r.output and "does-not-exist" in r.output
    assert "does not exist" in r.output


def test_published_pages_name_no_machine_path(tmp_path: Path) -> None:
    from medfairx.fileio import portable_paths

    base = tmp_path / "repo"
    text = f"cache {base}/.medfairx-cache/x.h5, data {tmp_path}/shared/data/ham10000; elsewhere /opt/x"
    assert portable_paths(text, base) == "cache .medfairx-cache/x.h5, data ../shared/data/ham10000; elsewhere /opt/x"


def test_card_caveats_are_a_card_row() -> None:
    from medfairx.report.datacards import card_rows, dataset_caveats

    rows = dict(card_rows({"caveats": ("Age and sex are confounded.", "Labels are automatic.")}, None))
    assert rows["caveats"] == "Age and sex are confounded. Labels are automatic."
    assert dict(card_rows({}, None))["caveats"] == "—"
    found = dataset_caveats(None, ["ixi", "no_such_dataset"])
    assert list(found) == ["ixi"] and any("68% female" in c for c in found["ixi"])

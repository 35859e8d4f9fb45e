"""Boards from several run stores, and bundles of outside results checked before they are shown."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from medfairx.errors import ConfigError
from medfairx.report.merge import gather
from medfairx.report.writer import write_report
from medfairx.store import RunStore

N = 40


def _predictions(seed: int, ids: list[str] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for split in ("val", "test"):
        y = rng.integers(0, 2, N)
        s = 1 / (1 + np.exp(-(rng.normal(0, 1, N) + 1.5 * y)))
        parts.append(pd.DataFrame({"split": split, "sample_id": [f"{split}-{i}" for i in range(N)],
                                   "group:sex": np.array(["F", "M"])[np.arange(N) % 2], "y_true": y, "score": s,
                                   "score_0": 1 - s, "score_1": s}))
    return pd.concat(parts, ignore_index=True)


def make_store(root: Path, methods: tuple[str, ...], *, split_hash: str = "split-a", tag: str = "") -> Path:
    """A suite folder with two seeds per method, written without training."""
    store = RunStore(root)
    for m in methods:
        for seed in (0, 1):
            run_id = f"{m}-toy-s{seed}{tag}"
            record = dict(run_id=run_id, suite="s", status="ok", method=m, dataset="toy", task="classification",
                          num_classes=2, train_grouping=None, groupings=["sex"], seed=seed, error=None,
                          dataset_revision="rev-1", split_hash=split_hash)
            store.write_run(run_id, record, _predictions(seed + 10 * len(m)))
    return store.root


def _report(stores: list[Path], out: Path, include: tuple[Path, ...] = ()) -> pd.DataFrame:
    write_report(stores, out, suite="s", echo=lambda _line: None, n_boot=10, include=list(include))
    return pd.read_csv(out / "results.csv")


KEYS = ["method", "seed", "strategy", "grouping", "metric", "scope", "group"]


# --- merged stores ---------------------------------------------------------------------------


def test_two_stores_make_one_board_with_both(tmp_path: Path) -> None:
    a, b = make_store(tmp_path / "a" / "s", ("erm",)), make_store(tmp_path / "b" / "s", ("groupdro",))
    results = _report([a, b], tmp_path / "site" / "s")
    assert set(results["method"]) == {"erm", "groupdro"}
    assert set(results["seed"]) == {0, 1}
    prov = json.loads((tmp_path / "site" / "s" / "provenance.json").read_text())
    assert prov["stores"] == ["a/s", "b/s"] and prov["runs"] == 4  # no absolute path of this machine
    assert str(tmp_path) not in (tmp_path / "site" / "s" / "index.html").read_text()


def test_a_merged_board_is_named_after_every_store(tmp_path: Path) -> None:
    from medfairx.cli.report_cmd import report

    a, b = make_store(tmp_path / "a" / "suite_a", ("erm",)), make_store(tmp_path / "b" / "suite_b", ("groupdro",))
    out = tmp_path / "site" / "merged"
    result = CliRunner().invoke(report, [str(a), str(b), "-o", str(out), "--n-boot", "10"])
    assert result.exit_code == 0, result.output
    assert "<title>suite_a + suite_b leaderboard" in (out / "index.html").read_text()


def test_stores_with_different_split_hashes_are_refused(tmp_path: Path) -> None:
    a = make_store(tmp_path / "a" / "s", ("erm",))
    b = make_store(tmp_path / "b" / "s", ("groupdro",), split_hash="split-b")
    with pytest.raises(ConfigError) as err:
        _report([a, b], tmp_path / "site" / "s")
    line = str(err.value)
    assert "\n" not in line and "'toy'" in line and "split hash" in line
    assert all(part in line for part in ("split-a", "split-b", str(a), str(b)))
    assert not (tmp_path / "site" / "s" / "index.html").exists()


def test_one_run_in_two_stores_is_taken_once_or_refused_when_it_differs(tmp_path: Path) -> None:
    a, b = make_store(tmp_path / "a" / "s", ("erm",)), make_store(tmp_path / "b" / "s", ("groupdro",))
    shutil.copytree(a / "erm-toy-s0", b / "erm-toy-s0")
    results = _report([a, b], tmp_path / "site" / "s")
    once = results[(results["method"] == "erm") & (results["seed"] == 0)]
    assert not once.duplicated(KEYS).any() and len(once)
    _predictions(99).to_parquet(b / "erm-toy-s0" / "predictions.parquet", index=False)
    with pytest.raises(ConfigError, match=r"'erm-toy-s0'.*different predictions\.parquet"):
        _report([a, b], tmp_path / "site2" / "s")


# --- bundles ---------------------------------------------------------------------------------


@pytest.fixture()
def stores(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The board's store (erm), another lab's store (groupdro) and that lab's exported bundle."""
    from medfairx.report.bundles import export_bundle

    here = make_store(tmp_path / "here" / "s", ("erm",))
    there = make_store(tmp_path / "there" / "s", ("groupdro",))
    bundle = export_bundle(there, "groupdro", tmp_path / "groupdro.zip")
    return here, there, bundle


def test_included_bundle_rows_are_marked_submitted_with_the_original_numbers(
        tmp_path: Path, stores: tuple[Path, Path, Path]) -> None:
    here, there, bundle = stores
    out = tmp_path / "site" / "s"
    merged = _report([here], out, (bundle,))
    assert set(merged["source"]) == {"run here", "submitted: groupdro.zip"}
    assert set(merged.loc[merged["source"] == "run here", "method"]) == {"erm"}
    original = _report([there], tmp_path / "orig" / "s")
    sub = merged[merged["method"] == "groupdro"].set_index(KEYS).sort_index()
    ref = original.set_index(KEYS).sort_index()
    assert len(sub) == len(ref)
    np.testing.assert_allclose(sub["value"].to_numpy(float), ref["value"].to_numpy(float), rtol=0, atol=0)
    index = (out / "index.html").read_text()
    assert "submitted: groupdro.zip" in index and "run here" in index
    assert "submitted: groupdro.zip" in (out / "method-groupdro.html").read_text()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["submissions"][0]["status"] == "submitted"
    assert prov["submissions"][0]["sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()


def _rewrite(bundle: Path, out: Path, edit: Callable[[dict[str, bytes]], None], *, fix_checksums: bool = True) -> Path:
    """A copy of ``bundle`` with its members edited (checksums recomputed, as a careful forger would)."""
    with zipfile.ZipFile(bundle) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    edit(members)
    if fix_checksums:
        manifest = json.loads(members["bundle.json"])
        manifest["members"] = {n: hashlib.sha256(b).hexdigest() for n, b in members.items() if n != "bundle.json"}
        members["bundle.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def _edit_test_ids(change: Callable[[pd.DataFrame], pd.DataFrame], ids: Callable[[list[str]], list[str]]):
    def edit(members: dict[str, bytes]) -> None:
        for name in [n for n in members if n.endswith("predictions.parquet")]:
            frame = pd.read_parquet(io.BytesIO(members[name]))
            buf = io.BytesIO()
            change(frame).to_parquet(buf, index=False)
            members[name] = buf.getvalue()
        manifest = json.loads(members["bundle.json"])
        manifest["datasets"]["toy"]["test_ids"] = ids(manifest["datasets"]["toy"]["test_ids"])
        members["bundle.json"] = json.dumps(manifest).encode()
    return edit


def _drop_sample(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["sample_id"] != "test-3"]


def _rename_sample(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(sample_id=frame["sample_id"].replace({"test-3": "test-3x"}))


def _edit_one_score(members: dict[str, bytes]) -> None:
    name = next(n for n in members if n.endswith("predictions.parquet"))
    frame = pd.read_parquet(io.BytesIO(members[name]))
    frame.loc[frame.index[-1], "score"] = 0.999
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    members[name] = buf.getvalue()


def _with_member(name: str, info_mode: int | None = None) -> Callable[[Path, Path], Path]:
    def make(bundle: Path, out: Path) -> Path:
        shutil.copy(bundle, out)
        with zipfile.ZipFile(out, "a") as zf:
            info = zipfile.ZipInfo(name)
            if info_mode is not None:
                info.external_attr = info_mode << 16
            zf.writestr(info, "../../outside-target" if info_mode else "pwned")
        return out
    return make


def _removed(bundle: Path, out: Path) -> Path:
    return _rewrite(bundle, out, _edit_test_ids(_drop_sample, lambda ids: [i for i in ids if i != "test-3"]))


def _renamed(bundle: Path, out: Path) -> Path:
    return _rewrite(bundle, out, _edit_test_ids(_rename_sample, lambda ids: ["test-3x" if i == "test-3" else i
                                                                           for i in ids]))


def _duplicated(bundle: Path, out: Path) -> Path:
    return _rewrite(bundle, out, _edit_test_ids(lambda f: pd.concat([f, f.tail(1)]), lambda ids: ids))


TAMPERED: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "one test sample removed": (_removed, r"missing 'test-3'"),
    "one test sample id changed": (_renamed, r"missing 'test-3'; not in the board's test split 'test-3x'"),
    "duplicate test sample": (_duplicated, r"duplicate test sample id\(s\) 'test-39'"),
    "member edited after export": (lambda b, o: _rewrite(b, o, _edit_one_score, fix_checksums=False),
                                   r"does not match its sha256"),
    "path traversal member": (_with_member("../evil"), r"'\.\./evil' is not a bundle file name"),
    "symbolic link member": (_with_member("runs/000/link.json", stat.S_IFLNK | 0o777), r"is a symbolic link"),
    "not an archive": (lambda b, o: (o.write_bytes(np.random.default_rng(0).bytes(4096)), o)[1], r"not a zip archive"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_malformed_or_tampered_bundle_is_refused_with_the_reason(
        case: str, tmp_path: Path, stores: tuple[Path, Path, Path]) -> None:
    here, _, bundle = stores
    make, reason = TAMPERED[case]
    bad = make(bundle, tmp_path / "bad.zip")
    lines: list[str] = []
    board = gather([here], [bad], echo=lines.append)
    assert {r.record["method"] for r in board.runs} == {"erm"}  # nothing of the bundle came in
    (row,) = board.submissions
    assert row["refused"] and row["status"].startswith("bad.zip: refused: ")
    assert "\n" not in row["status"]
    assert re.search(reason, row["status"]), row["status"]
    assert lines == [f"warning: {row['status']}"]
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_a_refused_bundle_is_listed_and_the_board_goes_on(tmp_path: Path, stores: tuple[Path, Path, Path]) -> None:
    here, _, bundle = stores
    junk = tmp_path / "junk.zip"
    junk.write_text("not a bundle")
    out = tmp_path / "site" / "s"
    results = _report([here], out, (junk, bundle))
    assert set(results["method"]) == {"erm", "groupdro"}
    index = (out / "index.html").read_text()
    assert "junk.zip: refused: not a zip archive" in index


def test_bundle_on_another_split_or_with_a_run_of_the_board_is_refused(
        tmp_path: Path, stores: tuple[Path, Path, Path]) -> None:
    from medfairx.report.bundles import export_bundle

    here, _, _ = stores
    other = make_store(tmp_path / "other" / "s", ("fis",), split_hash="split-b")
    moved = export_bundle(other, "fis", tmp_path / "fis.zip")
    own = export_bundle(here, "erm", tmp_path / "erm.zip")
    board = gather([here], [moved, own], echo=lambda _l: None)
    first, second = (s["status"] for s in board.submissions)
    assert "split hash 'split-b' in the bundle, 'split-a' on the board" in first
    assert "run id 'erm-toy-s0' is already on the board" in second


def test_a_bundle_of_a_method_run_here_too_gets_its_own_rows(tmp_path: Path, stores: tuple[Path, Path, Path]) -> None:
    from medfairx.report.bundles import export_bundle

    here, _, _ = stores
    elsewhere = make_store(tmp_path / "elsewhere" / "s", ("erm",), tag="-lab2")
    bundle = export_bundle(elsewhere, "erm", tmp_path / "erm-lab2.zip")
    board = gather([here], [bundle], echo=lambda _l: None)
    assert board.sources == {"erm": "run here", "erm (submitted: erm-lab2.zip)": "submitted: erm-lab2.zip"}


def test_cli_export_then_report_with_include(tmp_path: Path, stores: tuple[Path, Path, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from medfairx.cli import cli

    here, there, _ = stores
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(cli, ["export", str(there), "--method", "groupdro", "-o", "sub.zip"])
    assert res.exit_code == 0, res.output
    with zipfile.ZipFile(tmp_path / "sub.zip") as zf:
        names = zf.namelist()
        manifest: dict[str, Any] = json.loads(zf.read("bundle.json"))
    assert names[0] == "bundle.json" and all(n.endswith((".json", ".parquet")) for n in names)
    assert manifest["datasets"]["toy"]["test_ids"] == sorted(f"test-{i}" for i in range(N))
    assert manifest["datasets"]["toy"]["split_hash"] == "split-a" and set(manifest["members"]) == set(names) - {"bundle.json"}
    res = runner.invoke(cli, ["report", str(here), "--include", "sub.zip", "--n-boot", "5", "-o", "site/s"])
    assert res.exit_code == 0, res.output
    assert "submitted: sub.zip" in set(pd.read_csv(tmp_path / "site" / "s" / "results.csv")["source"])
    res = runner.invoke(cli, ["export", str(there), "--method", "nope"])
    assert res.exit_code == 2 and "No finished run of method 'nope'" in res.output

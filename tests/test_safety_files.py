"""Untrusted and damaged files: no code runs, no write follows a link, no stale or corrupt cache is used.

* a crafted ``state.pt`` whose unpickling would run code is refused (nothing runs);
* report pages and run logs replace a symbolic link planted at their path instead of
  writing through it;
* a ``run.json`` or prediction table that links out of the run store is never read, a
  corrupt ``predictions.parquet`` is listed as unreadable and the report goes on, and both
  store readers skip a bad ``run.json`` with a warning naming it;
* an image replaced by another of the same byte size changes the cache key and revision,
  bytes overwritten inside the HDF5 cache are detected and the cache rebuilt, and a
  read-only cache folder or a full disk gives one line that says what to do.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest

from medfairx.config import DatasetConfig, load_catalogue
from medfairx.data import cache as cache_mod
from medfairx.data.adapters import ham10000
from medfairx.data.cache import CacheRebuildWarning
from medfairx.errors import ConfigError, DataError
from medfairx.store import RunStore, StoreFileWarning

REPO = Path(__file__).resolve().parents[1]
HAM = Path(os.environ.get("MEDFAIRX_DATA") or REPO / ".." / "shared" / "data") / "ham10000"
SUBSET = "HAM10000_metadata_subset.csv"
N = 80


# --- model state files --------------------------------------------------------------------


class _Payload:
    """Unpickling this calls ``exec``, which writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _malicious_state(path: Path, marker: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 1, "method": "erm", "params": {}, "context": {}, "method_state": _Payload(marker)}, path)
    return path


def test_malicious_state_file_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    from medfairx.runner.state import fit_and_save, load_state

    marker = tmp_path / "marker"
    run_dir = tmp_path / "run"
    _malicious_state(run_dir / "state.pt", marker)
    with pytest.raises(ConfigError, match="refused") as err:
        load_state(run_dir)  # `medfairx cka --model a=<run folder>`
    assert "\n" not in str(err.value) and "exec" in str(err.value)
    with pytest.raises(ConfigError, match="refused"):  # a state.pt "reused" from an output folder
        fit_and_save("erm", None, None, run_dir / "state.pt")
    assert not marker.exists()


def test_weights_only_state_round_trip(tmp_path: Path) -> None:
    """What medfairx writes still loads: the saved payload is tensors and plain containers only."""
    from medfairx.plugins import get_host
    from medfairx.runner.state import load_state, save_state
    from medfairx.testing.toy import make_cpu_run_context, make_toy_splits

    splits, ctx = make_toy_splits(), make_cpu_run_context(epochs=1)
    method = get_host().registry("methods").get("groupdro").load()().fit(splits["train"], splits["val"], ctx)
    save_state(method, ctx, tmp_path / "state.pt")
    again, _ = load_state(tmp_path)
    data = splits["test"].without_labels()
    assert np.array_equal(again.predict_scores(data, ctx), method.predict_scores(data, ctx))


# --- a fabricated run store -------------------------------------------------------------


def _predictions(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for split in ("val", "test"):
        y = rng.integers(0, 2, N)
        s = 1 / (1 + np.exp(-(rng.normal(0, 1, N) + 1.5 * y)))
        parts.append(pd.DataFrame({"split": split, "sample_id": [f"{split}-{i}" for i in range(N)],
                                   "group:sex": np.array(["F", "M"])[np.arange(N) % 2], "y_true": y, "score": s,
                                   "score_0": 1 - s, "score_1": s}))
    return pd.concat(parts, ignore_index=True)


def _record(run_id: str, method: str, seed: int) -> dict[str, Any]:
    return dict(run_id=run_id, suite="s", status="ok", method=method, dataset="toy", task="classification",
                num_classes=2, train_grouping=None, groupings=["sex"], seed=seed, error=None)


def make_store(root: Path, methods: tuple[str, ...] = ("erm", "groupdro")) -> Path:
    store = RunStore(root / "runs" / "s")
    for m in methods:
        for seed in (0, 1):
            run_id = f"{m}-toy-s{seed}"
            store.write_run(run_id, _record(run_id, m, seed), _predictions(seed + 10 * len(m)))
    return store.root


def _report(runs: Path, out: Path) -> Path:
    from medfairx.cli.report_cmd import write_report

    return write_report(runs, out, suite="s", echo=lambda _line: None, n_boot=10)


def _all_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_report_replaces_a_symlinked_index_html(tmp_path: Path) -> None:
    runs = make_store(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "site" / "s"
    out.mkdir(parents=True)
    (out / "index.html").symlink_to(victim)
    (out / "results.csv").symlink_to(victim)
    index = _report(runs, out)
    assert victim.read_text() == "precious"
    assert not index.is_symlink() and "<html" in index.read_text().lower()
    assert not (out / "results.csv").is_symlink()


def test_run_log_replaces_a_planted_symlink(tmp_path: Path) -> None:
    from medfairx.runner.execute import RunLog

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run_dir = tmp_path / "runs" / "s" / "erm-toy-s0"
    run_dir.mkdir(parents=True)
    (run_dir / "log.txt").symlink_to(victim)
    log = RunLog(run_dir / "log.txt", None)
    log("epoch 1")
    assert (run_dir / "log.txt").read_text() == "epoch 1\n"  # visible while the run goes on
    log.close()
    assert victim.read_text() == "precious" and not (run_dir / "log.txt").is_symlink()


def test_run_json_linking_out_of_the_store_is_not_read(tmp_path: Path) -> None:
    runs = make_store(tmp_path)
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(_record("leak", "LEAKED_SECRET", 0)))
    leak = runs / "leak"
    leak.mkdir()
    (leak / "run.json").symlink_to(secret)
    _predictions(0).to_parquet(tmp_path / "outside.parquet")
    linked = runs / "linked-s0"
    linked.mkdir()
    (linked / "run.json").write_text(json.dumps(_record("linked-s0", "linked", 0)))
    (linked / "predictions.parquet").symlink_to(tmp_path / "outside.parquet")
    with pytest.warns(StoreFileWarning, match="outside the run store"):
        records = list(RunStore(runs).records())
    assert "LEAKED_SECRET" not in {r["method"] for r in records}
    out = tmp_path / "site" / "s"
    with pytest.warns(StoreFileWarning):
        _report(runs, out)
    assert "LEAKED_SECRET" not in _all_text(out)
    results, failures = pd.read_csv(out / "results.csv"), pd.read_csv(out / "failures.csv")
    assert "linked" not in set(results["method"])  # its predictions live outside the store: not scored
    assert failures.set_index("run_id").loc["linked-s0", "error_type"] == "UnreadableRun"


def test_corrupt_predictions_are_listed_and_the_report_goes_on(tmp_path: Path) -> None:
    runs = make_store(tmp_path)
    bad = runs / "groupdro-toy-s1" / "predictions.parquet"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 3])  # truncated by a full disk or a copy cut short
    out = tmp_path / "site" / "s"
    with pytest.warns(StoreFileWarning, match="groupdro-toy-s1"):
        _report(runs, out)
    results, failures = pd.read_csv(out / "results.csv"), pd.read_csv(out / "failures.csv")
    assert set(results["method"]) == {"erm", "groupdro"}
    assert set(results.loc[results["method"] == "groupdro", "seed"]) == {0}
    row = failures.set_index("run_id").loc["groupdro-toy-s1"]
    assert row["error_type"] == "UnreadableRun" and "predictions.parquet" in row["error_message"]
    assert "unreadable" in (out / "index.html").read_text()


def test_both_store_readers_skip_a_bad_run_json_with_a_warning(tmp_path: Path) -> None:
    from medfairx.metrics.evaluate import collect_failures, evaluate_runs

    runs = make_store(tmp_path, methods=("erm",))
    (runs / "erm-toy-s1" / "run.json").write_text("{not json")
    with pytest.warns(StoreFileWarning, match=r"erm-toy-s1.*run\.json"):
        records = list(RunStore(runs).records())
    with pytest.warns(StoreFileWarning, match=r"erm-toy-s1.*run\.json"):
        results = evaluate_runs(runs, n_boot=0)
    assert [r["run_id"] for r in records] == ["erm-toy-s0"] and set(results["seed"]) == {0}
    with pytest.warns(StoreFileWarning):
        assert collect_failures(runs).empty


# --- the pixel cache ----------------------------------------------------------------------


def _config(root: Path, metadata: str) -> DatasetConfig:
    base = load_catalogue(REPO / "datasets.yaml").datasets["ham10000"]
    return base.model_copy(update={"root": root, "image_size": 16,
                                   "options": {**base.options, "metadata": metadata, "workers": 2}})


@pytest.fixture
def own_copy(tmp_path: Path) -> DatasetConfig:
    """48 HAM10000 images and their metadata lines copied to a folder the test may change."""
    root = tmp_path / "ham"
    (root / "images").mkdir(parents=True)
    lines = (HAM / SUBSET).read_text().splitlines()
    keep = lines[1::40][:48]
    for line in keep:
        image_id = line.split(",")[1]
        shutil.copy2(HAM / "images" / f"{image_id}.jpg", root / "images" / f"{image_id}.jpg")
    (root / "meta.csv").write_text("\n".join([lines[0], *keep]) + "\n")
    return _config(root, "meta.csv")


def test_same_size_image_replacement_changes_key_and_revision(own_copy: DatasetConfig, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    before = ham10000.load(own_copy, cache_dir=cache)
    ids = list(before.metadata.index)
    images = Path(own_copy.root) / "images"
    sizes = {i: (images / f"{i}.jpg").stat().st_size for i in ids}
    big, small = max(ids, key=sizes.get), min(ids, key=sizes.get)
    target = images / f"{big}.jpg"
    st = target.stat()
    data = (images / f"{small}.jpg").read_bytes()
    target.write_bytes(data + b"\0" * (sizes[big] - len(data)))  # another picture, padded after its end marker
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime, as after `cp -p`
    assert target.stat().st_size == st.st_size
    after = ham10000.load(own_copy, cache_dir=cache)
    assert after.revision != before.revision and after.info["cache_file"] != before.info["cache_file"]
    pos_big, pos_small = ids.index(big), ids.index(small)
    pixels = after.source.read(np.array([pos_big, pos_small]))[0]  # type: ignore[attr-defined]
    assert np.array_equal(pixels[0], pixels[1])  # the new pixels, not the cached old ones

    def no_read(path: Any) -> str:
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(cache_mod, "file_digest", no_read)  # unchanged files are only stat-ed
    assert ham10000.load(own_copy, cache_dir=cache).revision == after.revision


def _train_images(cfg: DatasetConfig, cache: Path) -> np.ndarray:
    return ham10000.load(cfg, cache_dir=cache).task_data("train").images


def test_overwritten_cache_bytes_are_detected_and_rebuilt(own_copy: DatasetConfig, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    reference = _train_images(own_copy, cache)
    path = next(cache.glob("*.h5"))
    with h5py.File(path, "r") as f:
        ds = f["images"]
        chunk = ds.id.get_chunk_info(ds.shape[0] // 2)
        offset = chunk.byte_offset + chunk.size // 2  # the middle of one image's stored bytes
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes(range(7, 71)))
    with pytest.warns(CacheRebuildWarning, match="corrupt"):
        assert np.array_equal(_train_images(own_copy, cache), reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheRebuildWarning)  # the rebuilt file is valid
        assert np.array_equal(_train_images(own_copy, cache), reference)


def _failing_mkstemp(code: int) -> Any:
    def mkstemp(*args: Any, **kw: Any) -> Any:
        raise OSError(code, os.strerror(code))

    return mkstemp


def test_full_disk_gives_one_line(own_copy: DatasetConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    ds = ham10000.load(own_copy, cache_dir=cache)  # split manifest written; the pixels are cached lazily
    monkeypatch.setattr(tempfile, "mkstemp", _failing_mkstemp(errno.ENOSPC))
    with pytest.raises(DataError, match="disk is full") as err:
        ds.task_data("train")
    msg = str(err.value)
    assert "\n" not in msg and "HDF5 cache" in msg and str(cache) in msg and "MEDFAIRX_CACHE" in msg


def test_read_only_cache_folder_gives_one_line(own_copy: DatasetConfig, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "mkstemp", _failing_mkstemp(errno.EROFS))
    with pytest.raises(DataError, match="not writable") as err:
        ham10000.load(own_copy, cache_dir=tmp_path / "cache").task_data("train")
    assert "\n" not in str(err.value) and "MEDFAIRX_CACHE" in str(err.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not bind root")
def test_read_only_cache_folder_for_real(own_copy: DatasetConfig, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        with pytest.raises(DataError, match="not writable"):
            ham10000.load(own_copy, cache_dir=cache).task_data("train")
    finally:
        cache.chmod(0o755)


def test_stored_files_keep_normal_permissions(tmp_path: Path) -> None:
    from medfairx.fileio import FILE_MODE, atomic_write_text

    atomic_write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == FILE_MODE
    assert open(tmp_path / "a.txt").read() == "x"

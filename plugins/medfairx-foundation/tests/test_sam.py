"""SAM / MedSAM adapters: availability reasons, and a random tiny SAM driven end to end
through a temporary checkpoint (no download)."""

from __future__ import annotations

import importlib.util
import os
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from medfairx.data.prompts import Prompt
from medfairx.errors import ConfigError
from medfairx_foundation import availability
from medfairx_foundation.availability import MethodUnavailableError, unavailable_reason

HAVE_SAM = importlib.util.find_spec("segment_anything") is not None
if not HAVE_SAM and os.environ.get("CI"):
    raise RuntimeError(
        "CI must run the SAM adapter tests: install the extra, pip install -e 'plugins/medfairx-foundation[sam]' "
        "(segment-anything has no dependencies and leaves torch alone)."
    )
needs_sam = pytest.mark.skipif(not HAVE_SAM, reason="segment-anything not installed (pip install -e 'plugins/medfairx-foundation[sam]')")


def test_unavailable_reasons(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MEDFAIRX_SAM_CHECKPOINT", raising=False)
    monkeypatch.setattr(availability, "package_missing_reason", lambda: None)
    assert "no checkpoint configured" in unavailable_reason("sam")
    assert "MEDFAIRX_SAM_CHECKPOINT" in unavailable_reason("sam")
    assert "does not exist" in unavailable_reason("sam", tmp_path / "nope.pth")
    (tmp_path / "w.pth").write_bytes(b"x")
    monkeypatch.setenv("MEDFAIRX_SAM_CHECKPOINT", str(tmp_path / "w.pth"))
    assert unavailable_reason("sam") is None
    monkeypatch.setattr(availability, "package_missing_reason", lambda: "segment-anything is not installed")
    assert unavailable_reason("sam") == "segment-anything is not installed"


def test_real_missing_package_reason(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "segment_anything" else real(n, *a))
    assert "pip install 'medfairx-foundation[sam]'" in availability.package_missing_reason()


def test_sam_without_checkpoint_is_listed_unavailable_and_fit_raises(monkeypatch, make_blobs, make_ctx) -> None:
    from medfairx.plugins import get_host

    monkeypatch.delenv("MEDFAIRX_SAM_CHECKPOINT", raising=False)
    spec = get_host().registry("methods").get("sam")
    if not os.environ.get("MEDFAIRX_SAM_CHECKPOINT"):
        assert spec.unavailable and "checkpoint" in spec.unavailable
    from medfairx_foundation.sam import SAM

    data = make_blobs(n=4)
    with pytest.raises(MethodUnavailableError, match="'sam' is unavailable"):
        SAM().fit(data, data, make_ctx())


# --- the end-to-end test with a random tiny SAM ---------------------------------------------


def tiny_sam_from_modeling_classes() -> torch.nn.Module:
    """A random SAM-style model built directly from segment_anything.modeling (tiny dims)."""
    from medfairx_foundation.sam import import_sam_modeling

    m = import_sam_modeling()
    torch.manual_seed(0)
    return m.Sam(
        image_encoder=m.ImageEncoderViT(
            depth=2, embed_dim=32, img_size=64, mlp_ratio=4, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=2, patch_size=8, qkv_bias=True, use_rel_pos=True, global_attn_indexes=(1,), window_size=4,
            out_chans=32,
        ),
        prompt_encoder=m.PromptEncoder(embed_dim=32, image_embedding_size=(8, 8), input_image_size=(64, 64), mask_in_chans=4),
        mask_decoder=m.MaskDecoder(
            num_multimask_outputs=3,
            transformer=m.TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64, num_heads=2),
            transformer_dim=32, iou_head_depth=3, iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_sam.pth"
    torch.save(tiny_sam_from_modeling_classes().state_dict(), path)
    return path


@needs_sam
def test_sam_end_to_end_from_a_temporary_checkpoint(tiny_checkpoint: Path, make_blobs, make_ctx) -> None:
    from medfairx_foundation.analysis import evaluate_prompted
    from medfairx_foundation.sam import SAM

    data = make_blobs(n=9)
    ctx = make_ctx()
    results = {}
    for prompt in ("box", "point", "box+point"):
        m = SAM(checkpoint=str(tiny_checkpoint), model_type="tiny", prompt=prompt).fit(data, data, ctx)
        ev = evaluate_prompted(m, data, ctx, seed=0)
        assert set(ev.scores["group_dice"]) == {"high", "low"} and ev.scores["n"] == {"high": 6, "low": 3}
        assert all(0.0 <= v <= 1.0 for v in ev.scores["group_dice"].values())
        assert ev.prompts["config"]["mode"] == prompt and ev.prompts["n_prompts"] == 9
        assert set(ev.boundary) == {"high", "low"} and ev.error_maps["high"]["fn"].shape == (64, 64)
        results[prompt] = ev.scores["dice"]
    # the prompt reaches the decoder: different prompts give different masks
    assert not np.allclose(results["box"], results["point"])
    # the weights of the file are the ones used: same model in memory gives the same logits
    model = tiny_sam_from_modeling_classes()
    m = SAM(checkpoint=str(tiny_checkpoint), model_type="tiny").fit(data, data, ctx)
    for a, b in zip(model.state_dict().values(), m.segmenter_.model.state_dict().values(), strict=False):
        assert torch.equal(a, b)


@needs_sam
def test_prompt_coordinates_are_scaled_like_resize_longest_side(tiny_checkpoint: Path, monkeypatch) -> None:
    from medfairx_foundation.sam import SamSegmenter, load_sam_checkpoint

    model = load_sam_checkpoint(tiny_checkpoint, "tiny")
    seen = {}
    original = model.prompt_encoder.forward

    def spy(points, boxes, masks):
        seen["points"], seen["boxes"] = points, boxes
        return original(points, boxes, masks)

    monkeypatch.setattr(model.prompt_encoder, "forward", spy)
    seg = SamSegmenter(model)
    img = np.random.default_rng(0).integers(0, 255, (1, 32, 48)).astype(np.uint8)  # H=32, W=48
    emb = seg.embed(img)
    assert emb.input_size == (43, 64)  # 32 * 64/48 = 42.67 -> 43 ; 48 -> 64
    out = seg.predict_embedded(emb, Prompt(1, box=(3, 4, 21, 25), points=((12, 6),), point_labels=(1,)))
    assert out.shape == (32, 48) and 0.0 <= out.min() and out.max() <= 1.0
    sx, sy = 64 / 48, 43 / 32
    torch.testing.assert_close(seen["boxes"], torch.tensor([[3 * sx, 4 * sy, 21 * sx, 25 * sy]]))
    torch.testing.assert_close(seen["points"][0], torch.tensor([[[12 * sx, 6 * sy]]]))
    assert seen["points"][1].tolist() == [[1]]


@needs_sam
def test_checkpoint_errors_and_medsam(tiny_checkpoint: Path, tmp_path: Path, make_blobs, make_ctx) -> None:
    from medfairx_foundation.sam import MedSAM, load_sam_checkpoint

    with pytest.raises(ConfigError, match="does not fit SAM model_type 'vit_b'"):
        load_sam_checkpoint(tiny_checkpoint, "vit_b")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="Cannot read SAM checkpoint"):
        load_sam_checkpoint(bad, "tiny")
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": torch.load(tiny_checkpoint, weights_only=True)}, wrapped)
    load_sam_checkpoint(wrapped, "tiny")
    data, ctx = make_blobs(n=3), make_ctx()
    with pytest.raises(ConfigError, match="box prompts only"):
        MedSAM(checkpoint=str(tiny_checkpoint), model_type="tiny", prompt="point").fit(data, data, ctx)
    from medfairx.data.prompts import attach_prompts

    m = MedSAM(checkpoint=str(tiny_checkpoint), model_type="tiny").fit(data, data, ctx)
    scores = m.predict_scores(attach_prompts(data.without_labels(), data, m.prompt_config()), ctx)
    assert scores.shape == (3, 2, 32, 32)


@needs_sam
def test_sam_segments_volumes_slice_by_slice(tiny_checkpoint: Path, make_ctx) -> None:
    """3D: every prompted slice goes through the 2D adapter; unprompted slices stay empty."""
    from medfairx.contracts import TaskData
    from medfairx.data.prompts import attach_prompts
    from medfairx_foundation.sam import SAM
    from medfairx_foundation.segmenter import merge_masks

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (2, 1, 5, 24, 24)).astype(np.uint8)
    labels = np.zeros((2, 5, 24, 24), dtype=np.int64)
    labels[0, 1, 4:12, 5:15] = 1
    labels[0, 3, 10:20, 8:18] = 1
    labels[1, 2, 2:9, 2:9] = 1
    data = TaskData(images, labels, None, np.array(["a", "b"]))
    ctx = make_ctx().child(spatial_dims=3, image_size=(5, 24, 24))
    m = SAM(checkpoint=str(tiny_checkpoint), model_type="tiny", prompt="box+point").fit(data, data, ctx)
    prompted = attach_prompts(data.without_labels(), data, m.prompt_config(), seed=0)
    scores = m.predict_scores(prompted, ctx)
    assert scores.shape == (2, 2, 5, 24, 24)
    for i, slices in enumerate(((1, 3), (2,))):
        assert prompted.prompts.prompted_slices(i) == slices
        for k in range(5):
            if k in slices:
                mine = prompted.prompts.slice_prompts(i, k)
                expected = merge_masks(mine, m.segmenter_.predict_many(images[i][:, k], list(mine)), 2, (24, 24))
                np.testing.assert_allclose(scores[i, :, k], expected, atol=1e-6)
                assert scores[i, 1, k].max() > 0.0
            else:
                assert (scores[i, 1, k] == 0.0).all()
    assert m.slice_counts_["n_prompted_slices"] == 3 and m.slice_counts_["n_slices"] == 10

"""3D volumes by slice-wise prompting: per-slice 2D segmentation stacked back into the volume,
unprompted slices empty, slice counts recorded, and slice-level analysis."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from medfairx.contracts import TaskData
from medfairx.data.prompts import Prompt, PromptSet, attach_prompts, box_of
from medfairx.errors import ConfigError
from medfairx.metrics.basic import dice_iou_per_sample
from medfairx.plugins import get_host
from medfairx_foundation.analysis import evaluate_prompted, prompted_slice_view
from medfairx_foundation.classical import (
    BoxEllipse,
    BoxThreshold,
    EllipseSegmenter,
    ellipse_mask,
)
from medfairx_foundation.segmenter import segment_volume

D, S = 6, 16


def hand_volumes() -> TaskData:
    """Two (1, 6, 16, 16) volumes. Volume 0: objects on slices 1 (one), 2 (two), 4; slice 5 has
    a bright unlabelled square (it must stay empty). Volume 1: no object at all."""
    rng = np.random.default_rng(0)
    images = rng.integers(10, 60, size=(2, 1, D, S, S)).astype(np.uint8)
    labels = np.zeros((2, D, S, S), dtype=np.int64)
    labels[0, 1, 3:10, 2:13] = ellipse_mask((2, 3, 12, 9), (S, S))[3:10, 2:13]
    labels[0, 2, 1:4, 1:6] = 1
    labels[0, 2, 8:15, 7:14] = 1
    labels[0, 4, 5:12, 5:10] = ellipse_mask((5, 5, 9, 11), (S, S))[5:12, 5:10]
    images[0, 0][labels[0] > 0] = 200
    images[0, 0, 5, 4:12, 4:12] = 220  # bright, but unlabelled: no prompt, predicted empty
    images[1, 0, 3, 2:9, 2:9] = 220
    return TaskData(images, labels, np.array([0, 1]), np.array(["v0", "v1"]), 2, ("a", "b"))


def ctx3d(make_ctx, logs: list[str] | None = None):
    return make_ctx().child(spatial_dims=3, image_size=(D, S, S), log=(logs.append if logs is not None else lambda s: None))


def test_box_ellipse_3d_equals_the_2d_predictions_of_the_prompted_slices_stacked(make_ctx) -> None:
    data = hand_volumes()
    logs: list[str] = []
    ctx = ctx3d(make_ctx, logs)
    m = BoxEllipse().fit(data, data, ctx)
    prompted = attach_prompts(data.without_labels(), data, m.prompt_config(), seed=0)
    assert prompted.prompts.prompted_slices(0) == (1, 2, 4) and prompted.prompts.prompted_slices(1) == ()
    scores = m.predict_scores(prompted, ctx)
    assert scores.shape == (2, 2, D, S, S) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)

    m2 = BoxEllipse().fit(data, data, make_ctx())  # the same method on 2D images
    for i in range(2):
        for k in range(D):
            if k in prompted.prompts.prompted_slices(i):
                sl = TaskData(data.images[i][:, k][None], data.labels[i, k][None], None, np.array([f"{i}/{k}"]))
                flat = m2.predict_scores(attach_prompts(sl.without_labels(), sl, m2.prompt_config()), make_ctx())
                np.testing.assert_array_equal(scores[i, :, k], flat[0])
            else:  # unprompted: empty, even on slice 5's bright square
                assert (scores[i, 0, k] == 1.0).all() and (scores[i, 1, k] == 0.0).all()
    # by hand: the ellipse inscribed in each object's box, slice by slice
    pred = scores.argmax(axis=1)
    assert (pred[0, 1] == ellipse_mask(box_of(data.labels[0, 1]), (S, S))).all()
    two = ellipse_mask((1, 1, 5, 3), (S, S)) | ellipse_mask((7, 8, 13, 14), (S, S))
    assert (pred[0, 2] == two).all()
    assert not pred[0, [0, 3, 5]].any() and not pred[1].any()
    # the slice counts are recorded (attribute and run log)
    assert m.slice_counts_ == {"n_volumes": 2, "n_slices": 12, "n_prompted_slices": 3, "slice_axis": 0}
    assert len(logs) == 1 and "3 of 12 slices prompted" in logs[0] and "cannot contain false positives" in logs[0]


def test_segment_volume_direct_and_errors() -> None:
    vol = np.zeros((1, 4, 8, 8), dtype=np.uint8)
    prompts = [Prompt(1, box=(1, 1, 5, 5), slice_index=2), Prompt(1, box=(0, 0, 2, 2), slice_index=0)]
    out, slices = segment_volume(EllipseSegmenter(), vol, prompts, 2)
    assert slices == (0, 2) and out.shape == (2, 4, 8, 8)
    assert (out[1, 2] == ellipse_mask((1, 1, 5, 5), (8, 8))).all() and (out[1, 0] == ellipse_mask((0, 0, 2, 2), (8, 8))).all()
    assert not out[1, [1, 3]].any() and (out[0, [1, 3]] == 1).all()
    # the segmenter sees slice k of the image with slice k's prompts only
    seen: list[tuple[int, tuple[Prompt, ...]]] = []

    class Spy:
        def predict_many(self, image, ps):
            seen.append((int(image[0, 0, 0]), tuple(ps)))
            return np.stack([image[0] > 100] * len(ps)).astype(np.float32)

    marked = np.zeros((1, 4, 8, 8), dtype=np.uint8)
    marked[0, :, 0, 0] = [10, 11, 12, 13]  # slice k is recognisable by pixel (0, 0)
    marked[0, 2, 4:6, 4:6] = 200
    out, _ = segment_volume(Spy(), marked, prompts, 2)
    assert sorted(seen) == [(10, (prompts[1],)), (12, (prompts[0],))]
    assert out[1, 2].sum() == 4 and out[1, 2, 4:6, 4:6].all() and not out[1, 0].any()
    with pytest.raises(ConfigError, match="slice_index"):
        segment_volume(EllipseSegmenter(), vol, [Prompt(1, box=(0, 0, 1, 1))], 2)  # 2D prompt on a volume
    with pytest.raises(ConfigError, match="slice_index"):
        segment_volume(EllipseSegmenter(), vol, [Prompt(1, box=(0, 0, 1, 1), slice_index=4)], 2)


def test_prompts_must_fit_the_images(make_ctx) -> None:
    data = hand_volumes()
    ctx = ctx3d(make_ctx)
    m = BoxEllipse().fit(data, data, ctx)
    flat = PromptSet(prompts=((), ()), sample_ids=data.sample_ids, shape=(S, S))  # 2D prompts for volumes
    with pytest.raises(ConfigError, match="shape"):
        m.predict_scores(replace(data.without_labels(), prompts=flat), ctx)


def test_box_threshold_segments_noisy_ellipsoids_slice_by_slice(make_ctx) -> None:
    rng = np.random.default_rng(3)
    n, d, s = 6, 12, 24
    zz, yy, xx = np.mgrid[:d, :s, :s]
    labels = np.zeros((n, d, s, s), dtype=np.int64)
    images = rng.integers(20, 70, size=(n, 1, d, s, s))
    for i in range(n):
        cz, cy, cx = rng.uniform(4.5, 7.5), rng.uniform(9, 15), rng.uniform(9, 15)
        m = ((zz - cz) / 3.6) ** 2 + ((yy - cy) / 6.0) ** 2 + ((xx - cx) / 5.0) ** 2 <= 1.0
        labels[i] = m
        images[i, 0][m] = rng.integers(170, 220, size=int(m.sum()))
    data = TaskData(images.astype(np.uint8), labels, None, np.array([f"e{i}" for i in range(n)]))
    ctx = ctx3d(make_ctx).child(image_size=(d, s, s))
    m = BoxThreshold().fit(data, data, ctx)
    prompted = attach_prompts(data.without_labels(), data, m.prompt_config(), seed=0)
    pred = m.predict_scores(prompted, ctx).argmax(axis=1)
    dice, _ = dice_iou_per_sample(pred, labels, 2)
    assert dice.min() > 0.85, dice
    empty = labels.sum(axis=(2, 3)) == 0  # (n, d): slices without ground truth
    assert empty.any() and not pred[empty].any()


def test_tags_and_task_checks(make_ctx) -> None:
    reg = get_host().registry("methods")
    for name in ("box_ellipse", "box_threshold", "sam", "medsam"):
        assert reg.get(name).tags.spatial_dims == (2, 3)
        assert "cannot contain false positives" in reg.get(name).summary
    assert reg.get("prompt_unet").tags.spatial_dims == (2,)
    data = hand_volumes()
    with pytest.raises(ConfigError, match="3D volumes slice by slice"):
        BoxEllipse().fit(data, data, make_ctx().child(task="classification"))
    from medfairx_foundation.prompt_unet import TinyPromptUNet

    with pytest.raises(ConfigError, match="3D volumes are not supported"):
        TinyPromptUNet().fit(data, data, ctx3d(make_ctx))


def test_conformance_kit_3d_variant_passes() -> None:
    """At level ``full`` the kit also runs every method check on toy 3D volumes."""
    from medfairx.testing.checks_method import check_method, method_subject

    for name in ("box_ellipse", "box_threshold"):
        assert method_subject(name, "full").variants() == [("segmentation", 2), ("segmentation", 3)]
        check_method(name, level="full")  # raises ConformanceError listing every failed check


def test_prompted_slice_view_and_slice_level_evaluation(make_ctx) -> None:
    data = hand_volumes()
    ctx = ctx3d(make_ctx)
    m = BoxEllipse().fit(data, data, ctx)
    prompts = attach_prompts(data.without_labels(), data, m.prompt_config()).prompts
    pred = m.predict_scores(attach_prompts(data.without_labels(), data, m.prompt_config()), ctx).argmax(1)
    p, t, g, where = prompted_slice_view(pred, data.labels, data.groups, prompts)
    assert where.tolist() == [[0, 1], [0, 2], [0, 4]] and p.shape == t.shape == (3, S, S) and g.tolist() == [0, 0, 0]
    assert (t == data.labels[0, [1, 2, 4]]).all() and (p == pred[0, [1, 2, 4]]).all()
    with pytest.raises(ConfigError, match="prompted_slice_view"):
        prompted_slice_view(pred[:, 0], data.labels[:, 0], data.groups, prompts)

    ev = evaluate_prompted(m, data, ctx, seed=0)
    vol_dice, _ = dice_iou_per_sample(pred, data.labels, 2)
    np.testing.assert_allclose(ev.scores["dice"], vol_dice)
    assert ev.scores["dice"][1] == 1.0  # empty volume predicted empty
    slice_dice, _ = dice_iou_per_sample(p, t, 2)
    np.testing.assert_allclose(ev.slice_scores["dice"], slice_dice)
    assert ev.slice_scores["n"] == {"a": 3}
    summary = ev.summary()
    assert summary["slice_level"]["n_slices"] == {"a": 3} and summary["prompts"]["n_prompted_slices"] == 3
    assert "cannot contain false positives" in summary["slice_level"]["note"]
    assert set(ev.error_maps) == {"a"} and ev.error_maps["a"]["n"] == 3  # maps over the prompted slices

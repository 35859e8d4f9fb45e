"""BoxEllipse and the Otsu box-threshold baseline: hand computations and the method contract."""

from __future__ import annotations

import numpy as np
import pytest

from medfairx.data.prompts import Prompt, PromptConfig, attach_prompts, box_of
from medfairx.errors import ConfigError, NotFittedError
from medfairx.metrics.basic import dice_iou_per_sample
from medfairx_foundation.classical import (
    BoxEllipse,
    BoxThreshold,
    EllipseSegmenter,
    OtsuSegmenter,
    ellipse_mask,
    otsu_threshold,
)
from medfairx_foundation.segmenter import PromptableSegmenter, merge_masks


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(dice_iou_per_sample((a > 0.5)[None].astype(int), (b > 0)[None].astype(int), 2)[0][0])


def test_box_ellipse_on_perfect_ellipses(make_ellipse) -> None:
    seg = EllipseSegmenter()
    assert isinstance(seg, PromptableSegmenter)
    # the inscribed ellipse of an odd-sized box touches all four sides: exactly reproduced
    truth = ellipse_mask((4, 6, 20, 16), (24, 28))
    assert box_of(truth) == (4, 6, 20, 16)
    assert dice(seg.predict(np.zeros((1, 24, 28)), Prompt(1, box=box_of(truth))), truth) == 1.0
    # an ellipse drawn off the pixel grid: its tight box is slightly smaller -> Dice close to 1
    for cx, cy, a, b in [(13.3, 11.7, 7.6, 5.2), (15.5, 12.5, 10.0, 4.0), (10.0, 10.0, 3.3, 6.8)]:
        truth = make_ellipse((24, 28), cx, cy, a, b)
        assert dice(seg.predict(np.zeros((1, 24, 28)), Prompt(1, box=box_of(truth))), truth) > 0.93


def brute_force_otsu(v: np.ndarray) -> float:
    """Maximise w0*w1*(mu0-mu1)^2 over thresholds between distinct values (upper class: v >= t)."""
    best, best_t = -1.0, None
    for t in np.unique(v)[1:]:
        lo, hi = v[v < t], v[v >= t]
        score = lo.size * hi.size * (lo.mean() - hi.mean()) ** 2
        if score > best:
            best, best_t = score, t
    return best_t


def test_otsu_threshold_matches_the_definition() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = np.concatenate([rng.integers(0, 60, 50), rng.integers(40, 256, rng.integers(10, 90))]).astype(float)
        t = otsu_threshold(v)
        # integer data over 256 bins: every class split of the brute force is reachable
        split_mine = v >= t
        split_ref = v >= brute_force_otsu(v)
        assert np.array_equal(split_mine, split_ref)
    assert otsu_threshold(np.full(10, 7.0)) == 7.0


def test_otsu_baseline_on_blobs(make_ellipse) -> None:
    rng = np.random.default_rng(1)
    truth = make_ellipse((32, 32), 15.2, 16.8, 7.5, 5.0)
    img = rng.integers(30, 80, (32, 32))
    img[truth] = rng.integers(170, 220, int(truth.sum()))
    box = Prompt(1, box=box_of(truth))
    auto = OtsuSegmenter()
    assert dice(auto.predict(img[None], box), truth) > 0.99
    inverted = (255 - img)[None]  # a dark object: auto polarity follows the box border
    assert dice(auto.predict(inverted, box), truth) > 0.99
    assert dice(OtsuSegmenter(polarity="bright").predict(inverted, box), truth) < 0.5
    # jittered box (+4 px per side) still isolates the blob
    x0, y0, x1, y1 = box.box
    assert dice(auto.predict(img[None], Prompt(1, box=(x0 - 4, y0 - 4, x1 + 4, y1 + 4))), truth) > 0.99
    # RGB input: the channel mean is thresholded
    assert dice(auto.predict(np.stack([img] * 3), box), truth) > 0.99


def test_point_prompt_keeps_the_component_under_the_point() -> None:
    img = np.zeros((1, 20, 20), dtype=np.uint8)
    img[0, 2:6, 2:6] = 200  # 16 px, under the point
    img[0, 9:16, 9:16] = 200  # 49 px, larger
    box = (0, 0, 19, 19)
    under = OtsuSegmenter().predict(img, Prompt(1, box=box, points=((3, 3),), point_labels=(1,)))
    assert under.sum() == 16 and under[3, 3] == 1
    largest = OtsuSegmenter().predict(img, Prompt(1, box=box))
    assert largest.sum() == 49
    window = OtsuSegmenter(point_window=9).predict(img, Prompt(1, points=((12, 12),), point_labels=(1,)))
    assert window.sum() == 49


def test_merge_masks_by_hand() -> None:
    prompts = [Prompt(1, box=(0, 0, 1, 1)), Prompt(2, box=(0, 0, 1, 1))]
    masks = np.array([[[0.9, 0.0]], [[0.2, 0.6]]], dtype=np.float32)
    out = merge_masks(prompts, masks, 3, (1, 2))
    # pixel 0: p1=.9, p2=.2, bg=.1 -> /1.2 ; pixel 1: p1=0, p2=.6, bg=.4 -> /1.0
    np.testing.assert_allclose(out[:, 0, 0], np.array([0.1, 0.9, 0.2]) / 1.2, rtol=1e-6)
    np.testing.assert_allclose(out[:, 0, 1], [0.4, 0.0, 0.6], rtol=1e-6)


@pytest.mark.parametrize("cls", [BoxEllipse, BoxThreshold])
def test_method_contract(cls, make_blobs, make_ctx) -> None:
    data = make_blobs(n=12)
    ctx = make_ctx()
    m = cls()
    with pytest.raises(NotFittedError):
        m.predict_scores(data.without_labels(), ctx)
    assert m.fit(data, data, ctx) is m
    with pytest.raises(ConfigError, match="needs prompts derived from the ground truth"):
        m.predict_scores(data.without_labels(), ctx)
    empty = data.labels.copy()
    empty[0] = 0  # nothing to segment: no prompt, predicted empty
    truth = type(data)(data.images, empty, data.groups, data.sample_ids, 2, data.group_names)
    prompted = attach_prompts(truth.without_labels(), truth, m.prompt_config(), seed=0)
    scores = m.predict_scores(prompted, ctx)
    assert scores.shape == (12, 2, 32, 32) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    assert scores[0, 1].max() == 0.0
    d, _ = dice_iou_per_sample(scores.argmax(1), empty, 2)
    assert d[0] == 1.0 and d[1:].mean() > 0.85
    again = cls().load_state_dict(m.state_dict(), ctx).predict_scores(prompted, ctx)
    np.testing.assert_array_equal(scores, again)
    with pytest.raises(ConfigError, match="2D images"):
        cls().fit(data, data, make_ctx().child(task="classification"))


def test_prompt_parameters_are_validated(make_blobs, make_ctx) -> None:
    data = make_blobs(n=4)
    with pytest.raises(ConfigError, match="Unknown prompt mode"):
        BoxThreshold(prompt="scribble").fit(data, data, make_ctx())
    with pytest.raises(ConfigError, match="polarity"):
        BoxThreshold(polarity="up").fit(data, data, make_ctx())
    assert BoxThreshold(prompt="points", n_points=3, jitter=2).prompt_config() == PromptConfig("points", 2, 3)

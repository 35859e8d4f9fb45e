"""medfairx.prompts: prompts from known masks, seeded and bounded jitter, the audited step."""

from __future__ import annotations

import numpy as np
import pytest

from medfairx.errors import ConfigError
from medfairx.methods.base import TaskData
from medfairx.prompts import (
    BOX_VALUE,
    Prompt,
    PromptConfig,
    PromptedMethodTags,
    attach_prompts,
    box_of,
    centre_point,
    derive_prompts,
    needs_prompts,
    rasterise,
)


def square(shape=(16, 20), rows=(2, 6), cols=(3, 7)) -> np.ndarray:
    m = np.zeros(shape, dtype=np.int64)
    m[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = 1
    return m


def test_box_and_centre_of_a_known_mask() -> None:
    m = square()  # rows 2..6, cols 3..7: a 5x5 square
    assert box_of(m) == (3, 2, 7, 6)
    assert centre_point(m) == (5, 4)  # (x, y) of the square's centre, 3 px from the background
    rect = np.zeros((10, 10), dtype=bool)
    rect[0:3, 0:9] = True  # touches the image border, which counts as background
    assert centre_point(rect) == (1, 1)  # distance 2 along row 1 for x = 1..7; ties: row-major first
    with pytest.raises(ConfigError, match="empty"):
        box_of(np.zeros((4, 4)))


def test_modes_without_jitter() -> None:
    lab = square()[None]
    ids = ["a"]
    (box,) = derive_prompts(lab, ids, PromptConfig("box"))[0]
    assert box == Prompt(1, box=(3, 2, 7, 6))
    (pt,) = derive_prompts(lab, ids, PromptConfig("point"))[0]
    assert pt.box is None and pt.points == ((5, 4),) and pt.point_labels == (1,)
    (both,) = derive_prompts(lab, ids, PromptConfig("box+point"))[0]
    assert both.box == (3, 2, 7, 6) and both.points == ((5, 4),)
    (rnd,) = derive_prompts(lab, ids, PromptConfig("points", n_points=4), seed=3)[0]
    assert len(rnd.points) == 4 and all(lab[0, y, x] == 1 for x, y in rnd.points)


def test_jitter_is_seeded_and_bounded() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros((40, 24, 24), dtype=np.int64)
    for i in range(40):
        r, c = rng.integers(0, 18, size=2)
        labels[i, r : r + 6, c : c + 6] = 1  # some squares touch the border
    ids = [f"s{i}" for i in range(40)]
    j = 3
    a = derive_prompts(labels, ids, PromptConfig("box+point", jitter=j), seed=7)
    b = derive_prompts(labels, ids, PromptConfig("box+point", jitter=j), seed=7)
    c = derive_prompts(labels, ids, PromptConfig("box+point", jitter=j), seed=8)
    assert a.prompts == b.prompts and a.prompts != c.prompts
    grew = 0
    for i in range(40):
        (p,) = a[i]
        x0, y0, x1, y1 = box_of(labels[i])
        bx0, by0, bx1, by1 = p.box
        # boxes only grow outwards, by at most j per side, and stay inside the image
        assert x0 - j <= bx0 <= x0 and y0 - j <= by0 <= y0 and x1 <= bx1 <= x1 + j and y1 <= by1 <= y1 + j
        assert 0 <= bx0 and 0 <= by0 and bx1 <= 23 and by1 <= 23
        grew += (bx0, by0, bx1, by1) != (x0, y0, x1, y1)
        cx, cy = centre_point(labels[i])
        (px, py) = p.points[0]
        assert abs(px - cx) <= j and abs(py - cy) <= j and 0 <= px <= 23 and 0 <= py <= 23
    assert grew > 30  # the jitter is really applied


def test_prompts_do_not_depend_on_sample_order() -> None:
    labels = np.stack([square(rows=(1 + k, 5 + k)) for k in range(5)])
    ids = np.array([f"s{k}" for k in range(5)])
    cfg = PromptConfig("box", jitter=2)
    full = derive_prompts(labels, ids, cfg, seed=1)
    order = np.array([3, 0, 4])
    part = derive_prompts(labels[order], ids[order], cfg, seed=1)
    assert part.prompts == full.subset(order).prompts


def test_components_and_classes() -> None:
    lab = np.zeros((20, 20), dtype=np.int64)
    lab[1:3, 1:3] = 1  # 4 px
    lab[10:15, 10:15] = 1  # 25 px: the largest comes first
    lab[0, 19] = 1  # a 1-px speck
    lab[16:19, 1:4] = 2
    prompts = derive_prompts(lab[None], ["x"], PromptConfig("box"))[0]
    assert [p.box for p in prompts] == [(10, 10, 14, 14), (1, 1, 2, 2), (19, 0, 19, 0), (1, 16, 3, 18)]
    assert [p.label for p in prompts] == [1, 1, 1, 2]
    cfg = PromptConfig("box", min_component_size=2)
    assert [p.box for p in derive_prompts(lab[None], ["x"], cfg)[0]] == [(10, 10, 14, 14), (1, 1, 2, 2), (1, 16, 3, 18)]
    merged = derive_prompts(lab[None], ["x"], PromptConfig("box", per_component=False))[0]
    assert [p.box for p in merged] == [(1, 0, 19, 14), (1, 16, 3, 18)]


def test_attach_prompts_hands_only_prompts_and_is_audited() -> None:
    labels = np.stack([square(), np.zeros((16, 20), dtype=np.int64)])
    truth = TaskData(np.zeros((2, 1, 16, 20), np.uint8), labels, None, np.array(["a", "b"]))
    out = attach_prompts(truth.without_labels(), truth, PromptConfig("box"), seed=5)
    assert out.labels is None and len(out.prompts) == 2
    assert out.prompts[0] == (Prompt(1, box=(3, 2, 7, 6)),) and out.prompts[1] == ()
    audit = out.prompts.describe()
    assert audit["source"].startswith("ground truth") and audit["seed"] == 5
    assert audit["n_prompts"] == 1 and audit["n_unprompted_samples"] == 1 and audit["config"]["mode"] == "box"
    sub = out.subset(np.array([1]))  # TaskData.subset keeps prompts aligned
    assert sub.prompts[0] == () and list(sub.prompts.sample_ids) == ["b"]
    other = TaskData(truth.images, None, None, np.array(["b", "a"]))
    with pytest.raises(ConfigError, match="different samples"):
        attach_prompts(other, truth, PromptConfig())
    with pytest.raises(ConfigError, match="ground truth is missing"):
        attach_prompts(truth.without_labels(), truth.without_labels(), PromptConfig())


def test_rasterise_by_hand() -> None:
    r = rasterise([Prompt(1, box=(1, 1, 3, 2), points=((5, 4),), point_labels=(1,))], (6, 7))
    expected = np.zeros((6, 7), np.float32)
    expected[1:3, 1:4] = BOX_VALUE
    expected[3:6, 4:7] = 1.0
    np.testing.assert_array_equal(r, expected)


def test_validation_errors() -> None:
    with pytest.raises(ConfigError, match="Unknown prompt mode"):
        PromptConfig("scribble")
    with pytest.raises(ConfigError, match="jitter"):
        PromptConfig(jitter=-1)
    with pytest.raises(ConfigError, match="give a box"):
        Prompt(1)
    with pytest.raises(ConfigError, match="one per point"):
        Prompt(1, points=((1, 1),))
    with pytest.raises(ConfigError, match="2D"):
        derive_prompts(np.zeros((1, 4, 4, 4)), ["v"], PromptConfig())


def test_needs_prompts_tag() -> None:
    assert needs_prompts(PromptedMethodTags()) and not needs_prompts(object())

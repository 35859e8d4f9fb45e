"""medfairx.data.prompts: prompts from known masks, seeded and bounded jitter, the audited step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from medfairx.contracts import TaskData
from medfairx.data.prompts import (
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
from medfairx.errors import ConfigError


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
    with pytest.raises(ConfigError, match=r"\(N, H, W\) label maps or \(N, D, H, W\) volumes"):
        derive_prompts(np.zeros((1, 2, 4, 4, 4)), ["v"], PromptConfig())  # 4 spatial axes
    with pytest.raises(ConfigError, match=r"\(N, H, W\) label maps or \(N, D, H, W\) volumes"):
        derive_prompts(np.zeros((3, 4)), ["a", "b", "c"], PromptConfig())  # 1 spatial axis
    with pytest.raises(ConfigError, match="slice_index"):
        Prompt(1, box=(0, 0, 1, 1), slice_index=-1)


def test_needs_prompts_tag() -> None:
    assert needs_prompts(PromptedMethodTags()) and not needs_prompts(object())


# --- 3D volumes: slice-wise prompting ----------------------------------------------------------


def hand_volume() -> np.ndarray:
    """(6, 10, 12): slice 1 one square, slice 2 two squares, slice 4 a class-2 bar; 0, 3, 5 empty."""
    v = np.zeros((6, 10, 12), dtype=np.int64)
    v[1, 2:5, 3:7] = 1  # rows 2..4, cols 3..6
    v[2, 0:2, 0:2] = 1  # 4 px, touches the corner
    v[2, 5:9, 6:11] = 1  # 20 px: the largest comes first
    v[4, 7, 1:10] = 2  # a one-row bar of class 2
    return v


def test_3d_prompts_exist_exactly_for_the_non_empty_slices() -> None:
    vol = hand_volume()
    ps = derive_prompts(np.stack([vol, np.zeros_like(vol)]), ["v", "empty"], PromptConfig("box"))
    assert ps.spatial_dims == 3 and ps.shape == (6, 10, 12) and ps.n_slices == 6
    assert ps[0] == (
        Prompt(1, box=(3, 2, 6, 4), slice_index=1),
        Prompt(1, box=(6, 5, 10, 8), slice_index=2),
        Prompt(1, box=(0, 0, 1, 1), slice_index=2),
        Prompt(2, box=(1, 7, 9, 7), slice_index=4),
    )
    assert ps[1] == ()  # an empty volume: no prompt at all
    assert ps.prompted_slices(0) == (1, 2, 4) and ps.prompted_slices(1) == ()
    assert ps.slice_prompts(0, 2) == ps[0][1:3] and ps.slice_prompts(0, 3) == ()
    assert ps[0][0].to_dict()["slice_index"] == 1
    audit = ps.describe()
    assert audit["spatial_dims"] == 3 and audit["n_slices"] == 12 and audit["n_prompted_slices"] == 3
    assert audit["n_unprompted_slices"] == 9 and audit["n_prompts"] == 4 and audit["n_unprompted_samples"] == 1
    assert "cannot contain false positives" in audit["note"] and "upper bound" in audit["note"]
    # points: the distance-transform centre of each slice's object, in that slice's pixels
    # (rows 5..8 x cols 6..10 of slice 2: distance 2 is the maximum, first reached at x=7, y=6)
    pts = derive_prompts(vol[None], ["v"], PromptConfig("point"))[0]
    assert [(p.slice_index, p.points) for p in pts] == [(1, ((4, 3),)), (2, ((7, 6),)), (2, ((0, 0),)), (4, ((1, 7),))]


def test_3d_slice_prompts_equal_the_2d_prompts_of_the_slice() -> None:
    vol = hand_volume()
    for mode in ("box", "point", "box+point"):
        ps = derive_prompts(vol[None], ["v"], PromptConfig(mode, per_component=False))
        for k in range(vol.shape[0]):
            flat = derive_prompts(vol[k][None], ["v"], PromptConfig(mode, per_component=False))[0]
            assert ps.slice_prompts(0, k) == tuple(replace(p, slice_index=k) for p in flat)
    with pytest.raises(ConfigError, match="not 3D volumes"):
        derive_prompts(vol[1][None], ["v"], PromptConfig()).prompted_slices(0)


def test_2d_prompts_have_no_slice_index() -> None:
    (p,) = derive_prompts(square()[None], ["a"], PromptConfig("box+point", jitter=2), seed=1)[0]
    assert p.slice_index is None and "slice_index" not in p.to_dict()
    assert "n_slices" not in derive_prompts(square()[None], ["a"], PromptConfig()).describe()


def test_3d_jitter_is_seeded_per_sample_and_per_slice() -> None:
    rng = np.random.default_rng(0)
    vols = np.zeros((6, 8, 20, 20), dtype=np.int64)
    for i in range(6):
        for k in range(1, 7):
            r, c = rng.integers(2, 12, size=2)
            vols[i, k, r : r + 5, c : c + 5] = 1
    ids = np.array([f"v{i}" for i in range(6)])
    cfg = PromptConfig("box+point", jitter=3)
    a = derive_prompts(vols, ids, cfg, seed=7)
    assert a.prompts == derive_prompts(vols, ids, cfg, seed=7).prompts  # deterministic
    assert a.prompts != derive_prompts(vols, ids, cfg, seed=8).prompts  # seeded
    order = np.array([4, 1])
    assert derive_prompts(vols[order], ids[order], cfg, seed=7).prompts == a.subset(order).prompts
    grew = 0
    for i in range(6):
        assert a.prompted_slices(i) == (1, 2, 3, 4, 5, 6)
        for p in a[i]:
            x0, y0, x1, y1 = box_of(vols[i, p.slice_index])
            bx0, by0, bx1, by1 = p.box
            assert x0 - 3 <= bx0 <= x0 and y0 - 3 <= by0 <= y0 and x1 <= bx1 <= x1 + 3 and y1 <= by1 <= y1 + 3
            grew += p.box != (x0, y0, x1, y1)
    assert grew > 25  # the jitter is applied
    # per slice: changing (even emptying) one slice leaves the jittered prompts of the others unchanged
    edited = vols.copy()
    edited[2, 3] = 0
    edited[2, 5] = np.roll(edited[2, 5], 2, axis=1)
    b = derive_prompts(edited, ids, cfg, seed=7)
    for k in (1, 2, 4, 6):
        assert b.slice_prompts(2, k) == a.slice_prompts(2, k)
    assert b.slice_prompts(2, 3) == () and b.slice_prompts(2, 5) != a.slice_prompts(2, 5)
    # ... and slices of one volume do not share their jitter draws: identical masks, different jitter
    same = np.zeros((1, 12, 20, 20), dtype=np.int64)
    same[0, :, 6:12, 6:12] = 1
    boxes = {p.box for p in derive_prompts(same, ["s"], PromptConfig("box", jitter=3), seed=0)[0]}
    assert len(boxes) > 3


def test_attach_prompts_to_volumes() -> None:
    vol = hand_volume()
    truth = TaskData(np.zeros((1, 1, *vol.shape), np.uint8), vol[None], None, np.array(["v"]))
    out = attach_prompts(truth.without_labels(), truth, PromptConfig("box"), seed=0)
    assert out.labels is None and out.prompts.prompted_slices(0) == (1, 2, 4)
    assert all(set(p.to_dict()) == {"label", "box", "points", "point_labels", "slice_index"} for p in out.prompts[0])

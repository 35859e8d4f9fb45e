"""TinyPromptUNet: prompt channels by hand, a short training run on synthetic shapes."""

from __future__ import annotations

import numpy as np
import pytest

from medfairx.data.prompts import BOX_VALUE, Prompt, PromptSet, attach_prompts
from medfairx.errors import ConfigError
from medfairx.metrics.basic import dice_iou_per_sample
from medfairx_foundation.prompt_unet import TinyPromptUNet, prompt_channels


def test_prompt_channels_by_hand() -> None:
    ps = PromptSet(
        prompts=((Prompt(1, box=(0, 0, 1, 1)), Prompt(2, points=((3, 2),), point_labels=(1,))), ()),
        sample_ids=np.array(["a", "b"]),
        shape=(4, 5),
    )
    ch = prompt_channels(ps, num_classes=3)
    assert ch.shape == (2, 2, 4, 5) and ch.dtype == np.float32
    expected = np.zeros((4, 5), np.float32)
    expected[0:2, 0:2] = BOX_VALUE
    np.testing.assert_array_equal(ch[0, 0], expected)
    assert ch[0, 1].sum() == 9.0 and ch[0, 1, 2, 3] == 1.0  # a 3x3 square around (x=3, y=2)
    assert not ch[1].any()


def test_trains_briefly_and_segments_from_prompts(make_blobs, make_ctx) -> None:
    train, val, test = make_blobs(n=48, seed=0), make_blobs(n=8, seed=1), make_blobs(n=24, seed=2)
    ctx = make_ctx(epochs=12, batch_size=16, lr=1e-2)  # 36 steps: the shapes are simple
    m = TinyPromptUNet(prompt="box").fit(train.without_groups(), val.without_groups(), ctx)
    assert m.model_.net.conv_0.conv_0.conv.in_channels == 2  # image + one prompt channel
    with pytest.raises(ConfigError, match="needs prompts derived from the ground truth"):
        m.predict_scores(test.without_labels(), ctx)
    prompted = attach_prompts(test.without_labels().without_groups(), test, m.prompt_config(), seed=0)
    scores = m.predict_scores(prompted, ctx)
    assert scores.shape == (24, 2, 32, 32)
    dice, _ = dice_iou_per_sample(scores.argmax(1), test.labels, 2)
    assert dice.mean() > 0.8, dice.mean()
    again = TinyPromptUNet().load_state_dict(m.state_dict(), ctx).predict_scores(prompted, ctx)
    np.testing.assert_allclose(scores, again, atol=1e-6)

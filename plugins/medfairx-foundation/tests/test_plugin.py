"""Registration, tags, listing, and a cheap import."""

from __future__ import annotations

import os
import subprocess
import sys

import medfairx_foundation
from medfairx.data.prompts import needs_prompts
from medfairx.plugins import get_host


def test_all_methods_registered_with_prompt_tags() -> None:
    reg = get_host().registry("methods")
    names = {"box_ellipse", "box_threshold", "prompt_unet", "sam", "medsam"}
    assert names <= set(reg.names())
    for name in names:
        spec = reg.get(name)
        assert needs_prompts(spec) and spec.tags.tasks == ("segmentation",)
        assert spec.tags.evaluation_only == (name != "prompt_unet")
        assert spec.load().tags == spec.tags  # the class repeats the registered tags
        assert "ground truth" in spec.summary


def test_list_shows_sam_unavailable_with_reason(monkeypatch) -> None:
    monkeypatch.setattr(medfairx_foundation.availability, "package_missing_reason", lambda: None)
    monkeypatch.delenv("MEDFAIRX_MEDSAM_CHECKPOINT", raising=False)
    reason = medfairx_foundation.availability.unavailable_reason("medsam")
    assert reason.startswith("no checkpoint configured")
    if "MEDFAIRX_SAM_CHECKPOINT" not in os.environ:
        out = subprocess.run(
            [sys.executable, "-m", "medfairx.cli", "list", "methods", "sam"], capture_output=True, text=True, check=True
        ).stdout
        assert out.startswith("sam  UNAVAILABLE: ")


def test_import_does_not_import_torch() -> None:
    code = "import sys, medfairx_foundation; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_conformance_kit_attaches_prompts() -> None:
    """The kit derives prompts from the ground truth, as the runner does, and the methods pass."""
    from medfairx.testing.checks_method import check_method

    for name in ("box_ellipse", "box_threshold"):
        check_method(name)  # raises ConformanceError listing every failed check

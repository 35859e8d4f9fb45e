"""``medfairx datasets verify``: local copies against the published checksums and counts (real data)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from medfairx.cli.datasets_cmd import datasets
from medfairx.config import load_catalogue
from medfairx.data.releases import RELEASES
from medfairx.data.verify import listing_digest, read_record, verify_copy
from medfairx.report.datacards import verification, write_data_cards

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MEDFAIRX_DATA") or REPO / ".." / "shared" / "data")
HAM = DATA / "ham10000"
METADATA = "HAM10000_metadata.csv"

pytestmark = pytest.mark.skipif(not (HAM / METADATA).is_file(), reason="HAM10000 copy not available")


@pytest.fixture(autouse=True)
def _cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDFAIRX_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)


def _verify(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(datasets, ["verify", *args, "--config", str(REPO / "datasets.yaml")])
    return result.exit_code, result.output, result.stdout


def _linked_copy(tmp_path: Path, drop_image: str | None = None) -> Path:
    """A HAM10000 folder of symlinks (the shared copy is never modified); metadata copied."""
    root = tmp_path / "ham"
    (root / "images").mkdir(parents=True)
    for src in (HAM / "images").iterdir():
        if src.name != drop_image:
            (root / "images" / src.name).symlink_to(src)
    (root / "masks").symlink_to(HAM / "masks")
    for name in (METADATA, "HAM10000_metadata_subset.csv"):
        shutil.copyfile(HAM / name, root / name)
    return root


def test_shared_copy_passes_and_the_record_is_kept(tmp_path: Path) -> None:
    code, out, _ = _verify("ham10000", "--data-root", "../shared/data")
    assert code == 0, out
    assert "MEDFAIRX_DATA" not in os.environ or os.environ["MEDFAIRX_DATA"] != "../shared/data"
    assert "OK: the copy matches" in out and "images/: ok (5,398 files" in out
    catalogue = load_catalogue(REPO / "datasets.yaml")
    record = read_record(catalogue.cache_path, "ham10000", catalogue.dataset("ham10000").root)
    assert record is not None and record["ok"] is True
    card = {"published": True}
    assert verification(catalogue, "ham10000", card).startswith("verified against the published checksums and counts on ")
    assert verification(catalogue, "ham10000_seg", card).startswith("not verified")


def test_one_changed_metadata_byte_fails_naming_the_file(tmp_path: Path) -> None:
    root = _linked_copy(tmp_path)
    data = bytearray((root / METADATA).read_bytes())
    data[500] = ord("x") if data[500] != ord("x") else ord("y")
    (root / METADATA).write_bytes(bytes(data))
    code, _, stdout = _verify("ham10000", "--root", str(root), "--json")
    assert code == 1
    result = json.loads(stdout)
    assert result["ok"] is False
    assert [f["path"] for f in result["files"] if f["status"] == "changed"] == [METADATA]
    assert any(p.startswith(f"{METADATA}: changed (sha256 ") for p in result["problems"])


def test_deleted_image_fails_naming_it(tmp_path: Path) -> None:
    victim = sorted(p.name for p in (HAM / "images").iterdir())[123]
    root = _linked_copy(tmp_path, drop_image=victim)
    code, out, _ = _verify("ham10000", "--root", str(root))
    assert code == 1
    assert f"1 file(s) missing in images/ (the 224-px copy has 5,398): images/{victim}" in out
    assert "images/: changed (5,397 files" in out


def test_extra_file_and_changed_mask_content_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "ham"
    shutil.copytree(HAM / "masks", root / "masks")  # 22 MB on disk
    mask = sorted((root / "masks").iterdir())[7]
    mask.write_bytes(mask.read_bytes() + b"\0")
    (root / "images").mkdir()
    (root / "images" / "ISIC_9999999.jpg").write_bytes(b"not a published image")
    result = verify_copy(root, RELEASES["ham10000"])
    problems = "\n".join(result["problems"])
    assert f"{METADATA}: missing" in problems
    assert "images/ISIC_9999999.jpg" in problems and "extra" in problems
    assert "masks/: the sha256sum listing is" in problems  # only a listing checksum is published


def test_listing_digest_reproduces_the_published_integrity_checks() -> None:
    """The ``sha256sum`` listings the copies document (``LC_ALL=C sha256sum $(ls) | sha256sum``)."""
    masks = next(f for f in RELEASES["ham10000"].folders if f.listing_sha256)
    folder = HAM / "masks"
    assert listing_digest(folder, [p.name for p in folder.iterdir()]) == masks.listing_sha256


def test_data_card_page_shows_a_failed_verification(tmp_path: Path) -> None:
    root = tmp_path / "incomplete"
    (root / "masks").mkdir(parents=True)
    yaml = tmp_path / "datasets.yaml"
    yaml.write_text(f"version: 1\ndatasets:\n  hamcopy:\n    adapter: ham10000\n    root: {root}\n"
                    f"cache_dir: {tmp_path / 'cache'}\n", encoding="utf-8")
    page = write_data_cards(yaml, ["hamcopy"], tmp_path / "site", stored={})[0].read_text(encoding="utf-8")
    assert "not verified" in page
    result = CliRunner().invoke(datasets, ["verify", "hamcopy", "--config", str(yaml)])
    assert result.exit_code == 1 and f"{METADATA}: missing" in result.output
    page = write_data_cards(yaml, ["hamcopy"], tmp_path / "site", stored={})[0].read_text(encoding="utf-8")
    assert "verification FAILED on " in page


def test_changed_image_is_named_from_the_copy_manifest(tmp_path: Path) -> None:
    """Fitzpatrick17k's copy documents each image's sha256: a changed image is named, not just detected."""
    fz = DATA / "fitzpatrick17k"
    if not (fz / "PROVENANCE_images.tsv").is_file():
        pytest.skip("Fitzpatrick17k image copy not available")
    root = tmp_path / "fz"
    (root / "images").mkdir(parents=True)
    for name in ("fitzpatrick17k.csv", "PROVENANCE_images.tsv"):
        (root / name).symlink_to(fz / name)
    images = sorted((fz / "images").iterdir())
    for src in images[1:]:
        (root / "images" / src.name).symlink_to(src)
    (root / "images" / images[0].name).write_bytes(images[0].read_bytes()[:-1] + b"\0")
    result = verify_copy(root, RELEASES["fitzpatrick17k"])
    assert result["problems"] == [f"1 file(s) changed in images/ (the 224-px copy has 2,854): "
                                  f"images/{images[0].name}"]

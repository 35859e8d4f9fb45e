"""What is known of the published releases of the built-in datasets (read by ``medfairx datasets verify``).

Sizes, row counts and sha256 sums are those the publishers, or the documented public copies
the files were taken from, give; folder listing checksums are ``sha256sum`` listings as the
copies document them. Where only a documented subset of a release is known (224-px image
copies), that subset is a second entry for the same folder, and a local folder is compared
with whichever entry its file names fit.
"""

from __future__ import annotations

from medfairx.specs import PublishedFile, PublishedFolder, PublishedRelease

_HAM_IDS = "package:ham10000_images.txt"

RELEASES: dict[str, PublishedRelease] = {
    "ham10000": PublishedRelease(
        source="HAM10000 (Harvard Dataverse doi:10.7910/DVN/DBW86T): original HAM10000_metadata.csv; "
        "Tschandl et al. (2020) lesion masks",
        files=(
            PublishedFile("HAM10000_metadata.csv",
                          sha256="4df1a05042e1672316edd78bb6b4bfe8f64f1c8cf3cc33c3435a43de3bdbe8ee", rows=10015),
            PublishedFile("HAM10000_metadata_subset.csv", rows=1915, required=False),
        ),
        folders=(
            PublishedFolder("images", "*.jpg", 5398, label="224-px copy",
                            names=_HAM_IDS, name_suffix=".jpg"),
            PublishedFolder("images", "*.jpg", 10015, label="published release",
                            names="HAM10000_metadata.csv:image_id", name_suffix=".jpg"),
            PublishedFolder("masks", "*_segmentation.png", 5398, label="mask copy for the 224-px images",
                            names=_HAM_IDS, name_suffix="_segmentation.png",
                            listing_sha256="6c1cae0c469fc4bf66a8de66883e2eb13f7e54aec7d3e189e0e89186e8b4f2d7"),
            PublishedFolder("masks", "*_segmentation.png", 10015, label="published mask release",
                            names="HAM10000_metadata.csv:image_id", name_suffix="_segmentation.png"),
        ),
    ),
    "fitzpatrick17k": PublishedRelease(
        source="mattgroh/fitzpatrick17k (GitHub): fitzpatrick17k.csv @ 9865ce95 (2022) and bb8c35f8 (2021)",
        files=(
            PublishedFile("fitzpatrick17k.csv", size=4104341, rows=16577,
                          sha256="851dfaabf1791c2a8b1c2957619f3e0673cf0002f4ce924a5c02d185c7d4a1cd"),
            PublishedFile("original_2021/fitzpatrick17k.csv", size=4155825, rows=16577, required=False,
                          sha256="1e94f44f9c793f5721219918993126ce67241da05469f5600299f30bbd744d18"),
        ),
        folders=(
            PublishedFolder("images", "*.jpg", 2854, label="224-px copy",
                            names="PROVENANCE_images.tsv:md5hash", name_suffix=".jpg", sha256_column="staged_sha256",
                            listing_sha256="fa47cade5d63b31d4065972a30ea4e486a7942443ee1555322edb0e4fd6729b1"),
        ),
    ),
    "isic2019": PublishedRelease(
        source="ISIC 2019 challenge training release (ground truth, training and test metadata)",
        files=(
            PublishedFile("ISIC_2019_Training_GroundTruth.csv", size=1291479, rows=25331,
                          sha256="aa88e9638fe4df9ef330dc4ba22fa4bd475c44af692fffb870c73091ab25cdcd"),
            PublishedFile("ISIC_2019_Training_Metadata.csv", size=1214351, rows=25331,
                          sha256="d93994a8ed201d474de9a7af7e17ec30929cbc4a5220659ecbde17cbe83e9316"),
            PublishedFile("ISIC_2019_Test_Metadata.csv", size=293638, rows=8238, required=False,
                          sha256="1424022e92b6db4baae0b6e89bb7d4e71689a7ddaabc37c4922c92766dd69670"),
        ),
        folders=(
            PublishedFolder("ISIC_2019_Training_Input", "*.jpg", 25331, label="published training release",
                            names="ISIC_2019_Training_Metadata.csv:image", name_suffix=".jpg"),
        ),
    ),
    "pad_ufes20": PublishedRelease(
        source="PAD-UFES-20 (Mendeley Data doi:10.17632/zr7vgbcyr2.1): original metadata.csv",
        files=(
            PublishedFile("metadata.csv", size=316209, rows=2298,
                          sha256="14d145235cedb022548257acb0d84dcd949e2c916f65d2baa7c38ed5339e9527"),
        ),
        folders=(
            PublishedFolder("images", "**/*.png", 403, label="224-px copy",
                            names="PROVENANCE_images.tsv:img_id", sha256_column="staged_sha256",
                            listing_sha256="6783b835f6756ca92db9ec5d0b5eedbcd50910b11ae3bd5f12a24fb3a42d8d51",
                            listing_prefix="./"),
            PublishedFolder("images", "**/*.png", 2298, label="published release",
                            names="metadata.csv:img_id"),
        ),
    ),
    "tn_scui2020": PublishedRelease(
        source="TN-SCUI 2020 challenge training set (train.csv as distributed to participants)",
        files=(
            PublishedFile("train.csv", size=39648, rows=3644,
                          sha256="86456449adda4828945f92f9d2b2e47d2e58cfc24622bd45e1c425df6ad92f58"),
        ),
        folders=(
            PublishedFolder("image", "*.PNG", 3644, label="published training set", names="train.csv:ID"),
            PublishedFolder("mask", "*.PNG", 3644, label="published training set", names="train.csv:ID"),
        ),
    ),
}

"""Built-in adapters for real datasets (and user CSVs), registered as plugins.

Targets are lazy ``"medfairx.data.adapters.<name>:load"`` strings: importing this module
imports neither torch, h5py nor pandas. Adapters marked "tested on fixtures written from the
documentation" have never seen an original file (none could be obtained); the others are
tested against the original metadata files.
"""

from __future__ import annotations

from typing import Any

from medfairx.hookspecs import hookimpl
from medfairx.default_plugins.releases import RELEASES
from medfairx.specs import DatasetCard, DatasetSpec, Register

_MOD = "medfairx.data.adapters"
DOC_FIXTURES = "Tested on fixtures written from the documentation (no original file was available)."
_RESIZE = "Images resized bilinearly (antialiased) to image_size."


def _binary_card(**fields: Any) -> DatasetCard:
    """A binary classification card (``task`` and ``num_classes`` filled in).

    Args:
        **fields: the remaining :class:`DatasetCard` fields.
    """
    return DatasetCard(task="classification", num_classes=2, **fields)


CARDS: dict[str, DatasetCard] = {
    "fitzpatrick17k": _binary_card(
        attributes=("skin_type", "skin_type_binary", "skin_type_centaur", "skin_type_centaur_binary"),
        patient_id_column="md5hash (no patient id in the dataset: image-level splits)",
        license="CC BY-NC-SA 3.0",
        citation=(
            "Groh M. et al. Evaluating deep neural networks trained on clinical images in dermatology with the "
            "Fitzpatrick 17k dataset. CVPR Workshops (ISIC) 2021, 1820-1828. arXiv:2104.09957. Centaur labels: "
            "Groh M. et al. Towards transparency in dermatology image datasets with skin tone annotations by "
            "experts, crowds, and an algorithm. Proc. ACM HCI 6 (CSCW2), 2022."
        ),
        url="https://github.com/mattgroh/fitzpatrick17k",
        revision="fitzpatrick17k.csv @ 9865ce95 (2022) or bb8c35f8 (2021)",
        expected_layout=f"<root>/fitzpatrick17k.csv (either header version); <root>/images/<md5hash>.jpg. {_RESIZE}",
        class_names=("non-malignant", "malignant"),
        published=RELEASES["fitzpatrick17k"],
        caveats=(
            "No patient id and known near-duplicate photos: image-level splits can leak; the crowd skin-type labels "
            "are noisy (the two annotations agree on 46% of images).",
        ),
    ),
    "isic2019": _binary_card(
        attributes=("age", "sex", "site", "source"),
        patient_id_column="lesion_id (image id when empty)",
        license="CC BY-NC 4.0",
        citation=(
            "Tschandl P. et al. The HAM10000 dataset. Sci Data 5, 180161 (2018); Codella N. et al. "
            "arXiv:1710.05006 (2017); Combalia M. et al. BCN20000: Dermoscopic lesions in the wild. "
            "arXiv:1908.02288 (2019)."
        ),
        url="https://challenge.isic-archive.com/data/#2019",
        revision="ISIC 2019 training release",
        expected_layout=(
            "<root>/ISIC_2019_Training_GroundTruth.csv, <root>/ISIC_2019_Training_Metadata.csv (original, CRLF); "
            f"<root>/ISIC_2019_Training_Input/<image>.jpg (ids keep their _downsampled suffix). {_RESIZE}"
        ),
        class_names=("benign", "malignant"),
        published=RELEASES["isic2019"],
    ),
    "papila": _binary_card(
        attributes=("age", "sex", "eye"),
        patient_id_column="ID (both eyes of a patient in one split)",
        license="CC BY 4.0 (as reported by the figshare record; check before use)",
        citation=(
            "Kovalyk O. et al. PAPILA: Dataset with fundus images and clinical data of both eyes of the same "
            "patient for glaucoma assessment. Scientific Data 9, 291 (2022)."
        ),
        url="https://doi.org/10.6084/m9.figshare.14798004",
        expected_layout=(
            "<root>/ClinicalData/patient_data_od.xlsx and patient_data_os.xlsx (two-row header; needs openpyxl); "
            f"<root>/FundusImages/RET<ID>OD.jpg and RET<ID>OS.jpg. {DOC_FIXTURES} {_RESIZE}"
        ),
        class_names=("no glaucoma", "glaucoma"),
    ),
    "chexpert": _binary_card(
        attributes=("sex", "age", "race", "race_group", "race_binary", "ethnicity"),
        patient_id_column="patientNNNNN parsed from Path",
        license="Stanford University School of Medicine CheXpert Dataset Research Use Agreement",
        citation=(
            "Irvin J. et al. CheXpert: A Large Chest Radiograph Dataset with Uncertainty Labels and Expert "
            "Comparison. AAAI 2019, arXiv:1901.07031."
        ),
        url="https://stanfordmlgroup.github.io/competitions/chexpert/",
        expected_layout=(
            "<root>/CheXpert-v1.0-small/train.csv, valid.csv and the image folders they name; optionally "
            f"<root>/CHEXPERT DEMO.xlsx (race). {DOC_FIXTURES} {_RESIZE}"
        ),
        class_names=("no No Finding", "No Finding"),
    ),
    "mimic_cxr": _binary_card(
        attributes=("sex", "age", "race", "race_group", "race_binary"),
        patient_id_column="subject_id",
        license="PhysioNet Credentialed Health Data License 1.5.0",
        citation=(
            "Johnson A.E.W. et al. MIMIC-CXR-JPG, a large publicly available database of labeled chest "
            "radiographs. arXiv:1901.07042 (2019); Johnson A.E.W. et al. MIMIC-IV, a freely accessible "
            "electronic health record dataset. Sci Data 10, 1 (2023)."
        ),
        url="https://physionet.org/content/mimic-cxr-jpg/",
        expected_layout=(
            "<root>/mimic-cxr-2.0.0-{metadata,chexpert,split}.csv.gz and <root>/files/pXX/p<subject>/s<study>/"
            "<dicom_id>.jpg; MIMIC-IV hosp/patients.csv.gz and hosp/admissions.csv.gz (options.patients, "
            f"options.admissions). {DOC_FIXTURES} {_RESIZE}"
        ),
        class_names=("no No Finding", "No Finding"),
    ),
    "harvard_fairseg": DatasetCard(
        task="segmentation",
        num_classes=3,
        attributes=("age", "sex", "race", "ethnicity", "language", "marital_status"),
        patient_id_column="file stem (one patient per file)",
        license="CC BY-NC-ND 4.0",
        citation=(
            "Tian Y. et al. FairSeg: A Large-Scale Medical Image Segmentation Dataset for Fairness Learning Using "
            "Segment Anything Model with Fair Error-Bound Scaling. ICLR 2024, arXiv:2311.02189."
        ),
        url="https://github.com/Harvard-Ophthalmology-AI-Lab/FairSeg",
        expected_layout=(
            "<root>/**/data_XXXXX.npz (slo_fundus, disc_cup_mask, age, gender, race, ethnicity, language, "
            "maritalstatus); mask values mapped by options.mask_values (default abs(): 0 background, 1 rim, "
            f"2 cup). Grey image repeated on 3 channels. {DOC_FIXTURES}"
        ),
        class_names=("background", "rim", "cup"),
    ),
    "tn_scui2020": _binary_card(
        attributes=(),
        patient_id_column="ID (no patient id in the dataset: image-level splits)",
        license="TN-SCUI 2020 challenge terms of use (registration; no redistribution)",
        citation="TN-SCUI 2020 challenge, MICCAI 2020, https://tn-scui2020.grand-challenge.org/.",
        url="https://tn-scui2020.grand-challenge.org/",
        revision="train.csv (3,644 rows)",
        expected_layout=(
            "<root>/train.csv (ID,CATE; CR, LF or CRLF), <root>/image/<ID>, <root>/mask/<ID>; sensitive "
            f"attributes from a user table (options.attributes_csv with an ID column). {_RESIZE}"
        ),
        class_names=("benign", "malignant"),
        published=RELEASES["tn_scui2020"],
    ),
    "pad_ufes20": _binary_card(
        attributes=("age", "sex", "skin_type", "skin_type_binary", "region"),
        patient_id_column="patient_id",
        license="CC BY 4.0",
        citation=(
            "Pacheco A.G.C. et al. PAD-UFES-20: a skin lesion dataset composed of patient data and clinical "
            "images collected from smartphones. Data in Brief 32, 106221 (2020)."
        ),
        url="https://doi.org/10.17632/zr7vgbcyr2.1",
        expected_layout=(
            "<root>/metadata.csv (26 columns, original); images anywhere below <root>/images/ (e.g. imgs_part_1/); "
            f"rows without an image are counted and skipped. {_RESIZE}"
        ),
        class_names=("non-cancer", "cancer"),
        caveats=(
            "Rows with an empty background block (sex and skin type unknown) are all non-biopsied, non-cancer lesions: "
            "an 'unknown' group would have zero prevalence by construction, so it is outside every group.",
        ),
        published=RELEASES["pad_ufes20"],
    ),
    "ixi": DatasetCard(
        task="segmentation",
        num_classes=8,
        spatial_dims=3,
        in_channels=1,
        attributes=("age", "sex", "site"),
        patient_id_column="IXI id (IXI012 of IXI012-HH-1211; one T1 per subject)",
        license=(
            "IXI images CC BY-SA 3.0; resampled volumes and DLMUSE maps from CBICA/NiChart_Project under the SBIA "
            "Contribution and Software License Agreement v1.1 (research use only, modified copies)"
        ),
        citation=(
            "IXI dataset, https://brain-development.org/ixi-dataset/ (Imperial College London). DLMUSE labels: "
            "CBICA NiChart (Doshi J. et al. MUSE: MUlti-atlas region Segmentation utilizing Ensembles of registration "
            "algorithms and parameters. NeuroImage 127, 186-195, 2016)."
        ),
        url="https://brain-development.org/ixi-dataset/",
        revision="CBICA/NiChart_Project @ 494c25e0, test_data/processed/IXI (2 mm), resampled to 3 mm",
        expected_layout=(
            "<root>/images/<MRID>_T1.nii.gz, <root>/labels/<MRID>_seg.nii.gz (coarse: 7 structures), "
            "<root>/labels_dlmuse/<MRID>_dlmuse.nii.gz (full DLMUSE), <root>/IXI_Demog_n181.csv (MRID,Age,Sex), "
            "<root>/list_MUSE_all.csv; read with nibabel. Default target: the coarse map as 8 classes (Dice averaged "
            "over the seven structures), because it keeps the age-related structures (ventricles grow, hippocampi "
            "shrink) without the left/right errors of the full map; options.labels: dlmuse gives the full map "
            "(149 classes), options.structure one structure as a binary target. Volumes resized by area averaging "
            "(T1) and nearest neighbour (labels) to image_size [d, h, w]."
        ),
        class_names=("background", "lateral_ventricles", "hippocampus", "thalamus", "caudate", "putamen", "cerebellum", "brainstem"),
        caveats=(
            "Age and sex are confounded in IXI: the > 60 band is 68% female and the <= 40 band 59% male, so a sex gap "
            "is partly an age gap and vice versa; compare sexes within age bands (grouping sex_x_age).",
            "The reference labels are automatic DLMUSE segmentations, not expert ones: a gap mixes model error with "
            "DLMUSE error, which may itself depend on age or sex.",
            "One site and scanner (Hammersmith), 181 subjects: test groups hold a few dozen subjects at most; read "
            "every gap with its CI and group size.",
        ),
    ),
    "ddi": _binary_card(
        attributes=("skin_tone",),
        patient_id_column="DDI_ID (no patient id in the dataset)",
        license="Stanford AIMI research use agreement (non-commercial, no redistribution)",
        citation=(
            "Daneshjou R. et al. Disparities in dermatology AI performance on a diverse, curated clinical image "
            "set. Science Advances 8(31), eabq6147 (2022)."
        ),
        url="https://ddi-dataset.github.io/",
        expected_layout=f"<root>/ddi_metadata.csv; <root>/images/<DDI_file>. {DOC_FIXTURES} {_RESIZE}",
        class_names=("benign", "malignant"),
    ),
    "custom": _binary_card(
        attributes=(),
        patient_id_column="options.patient_column",
        license="(the user's data)",
        citation="(the user's data)",
        url="none (the user's own data; see the README section 'Your own data')",
        expected_layout=(
            "<root>/<options.csv> naming image paths (and mask paths) relative to <root>, a label column and "
            f"attribute columns; see medfairx.data.adapters.custom. {_RESIZE}"
        ),
        class_names=(),
    ),
}

SUMMARIES: dict[str, str] = {
    "fitzpatrick17k": "Fitzpatrick17k clinical dermatology images; malignant vs rest; skin type (Scale AI and Centaur).",
    "isic2019": "ISIC 2019 dermoscopy (ground truth + metadata); malignant vs benign; age, sex, site. Contains HAM10000.",
    "papila": "PAPILA fundus images of both eyes; glaucoma vs healthy (suspicious excluded); age, sex.",
    "chexpert": "CheXpert chest X-rays; one finding (default No Finding) with an uncertain-label policy; sex, age, race.",
    "mimic_cxr": "MIMIC-CXR-JPG chest X-rays with MIMIC-IV sex, age and race; one finding with an uncertain-label policy.",
    "harvard_fairseg": "Harvard-FairSeg SLO fundus npz; optic cup and rim segmentation; six demographic attributes.",
    "tn_scui2020": "TN-SCUI 2020 thyroid ultrasound; benign vs malignant or nodule segmentation; attributes from a user table.",
    "pad_ufes20": "PAD-UFES-20 smartphone skin images; cancer (BCC, SCC, MEL) vs rest; age, sex, skin type.",
    "ixi": "IXI 3-D T1 brain MRI (NIfTI, Hammersmith); DLMUSE structure segmentation (7 coarse or full map); age, sex.",
    "ddi": "DDI clinical dermatology images (external test set); malignant vs benign; skin tone 12/34/56.",
    "custom": "Your own images from one CSV: image path, label or mask, attribute and patient columns.",
}


_USER_ATTRIBUTES = (
    "its sensitive attributes come from a table the user supplies (options), so the card cannot list them"
)
#: Known, justified conformance failures (read by medfairx.testing.check_plugin).
MEDFAIRX_EXPECTED_FAILED_CHECKS = {
    "datasets:tn_scui2020": {"check_card_complete": _USER_ATTRIBUTES},
    "datasets:custom": {"check_card_complete": _USER_ATTRIBUTES},
}


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the real-dataset and custom adapters."""
    for name, card in CARDS.items():
        register(DatasetSpec(name, f"{_MOD}.{name}:load", card=card, summary=SUMMARIES[name]))

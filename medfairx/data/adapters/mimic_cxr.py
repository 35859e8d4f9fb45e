"""MIMIC-CXR-JPG adapter: per-image metadata + per-study CheXpert labels + MIMIC-IV demographics.

Tested on fixtures written from the documentation (``../shared/data/mimic-cxr/NOT-STAGED.md``);
the data are credentialed and none was available.

* ``root`` is the MIMIC-CXR-JPG folder: ``mimic-cxr-2.0.0-metadata.csv.gz`` (one row per
  image), ``mimic-cxr-2.0.0-chexpert.csv.gz`` (one row per study; ``options.labels`` may
  name the NegBio file), ``mimic-cxr-2.0.0-split.csv.gz`` and
  ``files/pXX/p<subject>/s<study>/<dicom_id>.jpg``.
* Labels join images on (``subject_id``, ``study_id``); observations are read **by name**.
  Same finding / uncertain policy as CheXpert (``options.finding`` default ``"No Finding"``,
  ``options.uncertain`` default ``u_ignore``). Views ``PA`` and ``AP`` only by default
  (``options.views``).
* MIMIC-IV ``hosp/patients.csv.gz`` gives ``sex`` (M/F) and the age at the study,
  ``anchor_age + year(StudyDate) - anchor_year``; ``hosp/admissions.csv.gz`` gives race
  (column ``race``, or ``ethnicity`` in MIMIC-IV v1.0). Paths are ``options.patients`` and
  ``options.admissions`` (relative to ``root`` or absolute).
* Race rule (a patient can have several values): each admission's value is grouped
  (White / Black / Asian / Hispanic / Other / unknown); ``options.race_rule: mode`` (default)
  keeps the most frequent known group (a tie → ``unknown``, counted); ``consistent`` makes
  patients with two different known groups ``unknown`` (counted). ``race`` is the most
  frequent published value within the chosen group; ``race_binary`` is White / non-White.
* ``official_split`` holds the release's ``train`` / ``validate`` / ``test``; ``patient_id``
  is ``subject_id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.config import DatasetConfig, LabelConfig
from medfairx.data.adapters import _loading
from medfairx.data.adapters._cxr import (
    DEFAULT_FINDING,
    FINDINGS,
    finding_labels,
    race_group,
)
from medfairx.data.adapters._tabular import (
    MISSING,
    Header,
    Report,
    choose,
    codes,
    numbers,
    option_path,
    read_csv_table,
    read_id_table,
    unique_ids,
)
from medfairx.data.dataset import FairDataset
from medfairx.errors import DataError

NAME = "mimic_cxr"
METADATA = Header(
    required=("dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate"),
    optional=(
        "PerformedProcedureStepDescription", "Rows", "Columns", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
        "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning",
    ),
)
SPLIT = Header(required=("dicom_id", "study_id", "subject_id", "split"))
PATIENTS = Header(required=("subject_id", "gender", "anchor_age", "anchor_year"), optional=("anchor_year_group", "dod"))
ADMISSIONS = Header(required=("subject_id", "race"), aliases={"ethnicity": "race"})
SEX = {"M": "male", "F": "female"}
RACE_RULES = ("mode", "consistent")
OPTIONS: dict[str, Any] = {
    "metadata": "mimic-cxr-2.0.0-metadata.csv.gz",
    "labels": "mimic-cxr-2.0.0-chexpert.csv.gz",
    "split_file": "mimic-cxr-2.0.0-split.csv.gz",
    "patients": "hosp/patients.csv.gz",
    "admissions": "hosp/admissions.csv.gz",
    "finding": DEFAULT_FINDING,
    "uncertain": "u_ignore",
    "views": ["PA", "AP"],
    "race_rule": "mode",
}
LAYOUT = (
    "mimic-cxr-2.0.0-{metadata,chexpert,split}.csv.gz, files/pXX/p<subject>/s<study>/<dicom_id>.jpg; "
    "MIMIC-IV hosp/patients.csv.gz and hosp/admissions.csv.gz (options.patients / options.admissions)"
)


def patient_race(admissions: pd.DataFrame, rule: str, report: Report) -> pd.DataFrame:
    """One race per ``subject_id`` from admission rows (see module docstring for the rule)."""
    choose(rule, RACE_RULES, "mimic_cxr option race_rule")
    adm = admissions.assign(group=admissions["race"].map(race_group))
    known = adm.loc[adm["group"].ne(MISSING)]
    counts = known.groupby(["subject_id", "group"]).size().rename("n").reset_index()
    counts = counts.sort_values(["subject_id", "n", "group"], ascending=[True, False, True])
    n_groups = counts.groupby("subject_id")["group"].transform("size")
    top = counts.groupby("subject_id").head(2)
    first = top.groupby("subject_id").nth(0).set_index("subject_id")
    second_n = top.groupby("subject_id")["n"].apply(lambda s: s.iloc[1] if len(s) > 1 else 0)
    if rule == "mode":
        conflict = second_n.reindex(first.index).eq(first["n"])
        reason = "race: tie between groups (race_rule mode)"
    else:
        conflict = n_groups.groupby(counts["subject_id"]).max().reindex(first.index).gt(1)
        reason = "race: different groups across admissions (race_rule consistent)"
    report.exclude(f"patients set to unknown, {reason}", int(conflict.sum()))
    group = first["group"].where(~conflict, MISSING)
    chosen = known.merge(group.rename("chosen").reset_index(), on="subject_id")
    chosen = chosen.loc[chosen["group"].eq(chosen["chosen"])]
    published = chosen.groupby("subject_id")["race"].agg(lambda s: s.value_counts().index[0])
    out: pd.DataFrame = pd.DataFrame({"race_group": group})
    out["race"] = published.reindex(out.index).fillna(MISSING)
    return out


def read_metadata(
    root: Path,
    *,
    metadata: str = OPTIONS["metadata"],
    labels: str = OPTIONS["labels"],
    split_file: str | None = OPTIONS["split_file"],
    patients: str = OPTIONS["patients"],
    admissions: str = OPTIONS["admissions"],
    finding: str = DEFAULT_FINDING,
    uncertain: str = "u_ignore",
    views: list[str] | tuple[str, ...] = ("PA", "AP"),
    race_rule: str = "mode",
    label: LabelConfig | None = None,
    check: bool = True,
) -> pd.DataFrame:
    """Join the MIMIC-CXR-JPG and MIMIC-IV files into the standard metadata frame.

    Returns:
        Frame indexed by ``sample_id`` (= ``dicom_id``) with ``label``, ``finding``,
        ``patient_id`` (= ``subject_id``), ``study_id``, ``view``, ``official_split``,
        ``sex``, ``age``, ``race``, ``race_group``, ``race_binary``, ``image_path``.
    """
    root = Path(root)
    if finding not in FINDINGS:
        raise DataError(f"MIMIC-CXR option finding: {finding!r} is not an observation; use one of: {', '.join(FINDINGS)}.")
    report = Report(NAME)
    md = read_id_table(option_path(root, metadata), METADATA, report, "dicom_id")
    lab_header = Header(required=("subject_id", "study_id", finding), optional=tuple(f for f in FINDINGS if f != finding))
    lab = read_csv_table(option_path(root, labels), lab_header, report)
    unique_ids(lab.frame["study_id"], lab, "study_id")
    study_finding = pd.Series(finding_labels(lab, finding, uncertain, report).to_numpy(), index=lab.frame["study_id"].to_numpy())
    df = md.frame
    view_ok = df["ViewPosition"].isin(list(views))
    report.exclude(f"view not in {list(views)}", int((~view_ok).sum()))
    df = df.loc[view_ok]
    has_label = df["study_id"].isin(study_finding.index)
    report.exclude("study without a labeller row", int((~has_label).sum()))
    df = df.loc[has_label]
    out = pd.DataFrame(index=df["dicom_id"].to_numpy())
    out["patient_id"] = df["subject_id"].to_numpy()
    out["study_id"] = df["study_id"].to_numpy()
    out["view"] = df["ViewPosition"].to_numpy()
    out["finding"] = study_finding.reindex(df["study_id"]).to_numpy()
    out = out.loc[out["finding"].notna()]
    if split_file:
        sp = read_csv_table(option_path(root, split_file), SPLIT, report)
        out["official_split"] = out.index.map(sp.frame.set_index("dicom_id")["split"]).fillna(MISSING)
    pt = read_csv_table(option_path(root, patients), PATIENTS, report)
    unique_ids(pt.frame["subject_id"], pt, "subject_id")
    ptf = pt.frame.set_index("subject_id")
    sex = pd.Series(codes(pt, "gender", SEX, report, attribute="sex").to_numpy(), index=ptf.index)
    anchor_age = pd.Series(numbers(pt, "anchor_age", report).to_numpy(), index=ptf.index)
    anchor_year = pd.Series(numbers(pt, "anchor_year", report).to_numpy(), index=ptf.index)
    matched = out["patient_id"].isin(ptf.index)
    report.missing_values["MIMIC-IV patient row"] = int((~matched).sum())
    out["sex"] = out["patient_id"].map(sex).fillna(MISSING)
    study_year = pd.to_numeric(df.set_index("dicom_id").loc[out.index, "StudyDate"].str.slice(0, 4), errors="coerce")
    out["age"] = (out["patient_id"].map(anchor_age) + study_year.to_numpy() - out["patient_id"].map(anchor_year)).astype(float)
    adm = read_csv_table(option_path(root, admissions), ADMISSIONS, report).frame
    race = patient_race(adm[["subject_id", "race"]], race_rule, report)
    out["race"] = out["patient_id"].map(race["race"]).fillna(MISSING)
    out["race_group"] = out["patient_id"].map(race["race_group"]).fillna(MISSING)
    out["race_binary"] = out["race_group"].map(lambda g: MISSING if g == MISSING else ("White" if g == "White" else "non-White"))
    unmatched = ~out["patient_id"].isin(adm["subject_id"])
    report.missing_values["race"] = int(out["race_group"].eq(MISSING).sum())
    report.notes.append(
        f"{int(unmatched.sum())} images ({out.loc[unmatched, 'patient_id'].nunique()} patients) have no MIMIC-IV admission (race unknown)"
    )
    sid = out["patient_id"].astype(str)
    out["image_path"] = "files/p" + sid.str.slice(0, 2) + "/p" + sid + "/s" + out["study_id"].astype(str) + "/" + out.index + ".jpg"
    default = LabelConfig(column="finding", positive=["positive"])
    return _loading.labelled(out, report, root, label=label, default=default, names=(f"no {finding}", finding), check=check)


def load(cfg: DatasetConfig, *, cache_dir: Path) -> FairDataset:
    """Adapter entry point: metadata, images, cache and patient-level splits."""
    files = ("metadata", "labels", "split_file", "patients", "admissions")
    return _loading.load_classification(cfg, cache_dir, NAME, OPTIONS, LAYOUT, read_metadata, files=files)

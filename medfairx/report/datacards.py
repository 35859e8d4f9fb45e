"""Data cards: one page per dataset of a leaderboard, and the facts ``medfairx datasets check`` prints.

A data card shows what a dataset is (task, classes, licence, citation, URL, revision,
split hash) and what :func:`medfairx.data.dataset.describe_dataset` finds in it (rows,
rows skipped for a missing image, unknown codes, group sizes and prevalences under every
grouping, split sizes, patient-disjointness, problems, warnings). A dataset that cannot
be loaded still gets a page, with the error in place of the numbers.

Only :func:`write_data_cards` touches jinja2 and the leaderboard helpers, so the CLI can
import the text helpers cheaply.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medfairx.config import Catalogue

#: Keys of ``describe_dataset``'s dict shown in their own sections; every other scalar
#: key is an adapter fact (source rows, skipped rows, unknown codes, ...).
STRUCTURED_KEYS = frozenset({
    "name", "adapter", "task", "num_classes", "revision", "samples", "overall", "splits",
    "split_hash", "patient_disjoint", "groupings", "problems", "warnings",
})
NOT_RECORDED = (
    "The run store holds no data card for {name!r} (it is written each time `medfairx bench` loads the dataset). "
    "Run `medfairx bench --suite {suite}` again (finished runs are reused) to record it."
)
FACT_LABELS = {
    "source_rows": "rows in the source metadata",
    "skipped_missing_images": "rows skipped: image file missing",
    "metadata_file": "metadata file(s)",
    "cache_file": "pixel cache",
}


def describe_with_card(catalogue: Catalogue | str | Path | None, name: str, *,
                       cache_dir: str | Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load dataset ``name`` now and return ``(card, description)`` (:func:`~medfairx.data.dataset.data_card`).

    ``description`` is what :func:`~medfairx.data.dataset.describe_dataset` returns (same
    loading, same recorded warnings), with paths written portably.

    Raises:
        Whatever loading raises (unknown name, missing files, ...).
    """
    from medfairx.data.dataset import data_card, load_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset(catalogue, name, cache_dir=cache_dir)
    record = data_card(dataset, [str(w.message) for w in caught])
    return record["card"], record["description"]


def static_card(catalogue: Catalogue | str | Path | None, name: str) -> dict[str, Any]:
    """The card of ``name`` without loading its data (catalogue entry + adapter card); ``{}`` if unknown."""
    try:
        import dataclasses

        from medfairx.data.dataset import _catalogue
        from medfairx.plugins import get_host

        cfg = _catalogue(catalogue).dataset(name)
        card = dataclasses.asdict(get_host().registry("datasets").get(cfg.adapter).card)
        card.update(name=name, adapter=cfg.adapter, description=cfg.description)
        if cfg.task:
            card["task"] = cfg.task
        return card
    except Exception:  # noqa: BLE001 - a card is best effort; the page shows the load error
        return {}


def facts(info: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Adapter facts of a description as ``(label, value)``: rows, rows skipped, unknown codes, ..."""
    out = [("rows (samples kept)", str(info.get("samples", "—")))]
    for key, value in info.items():
        if key in STRUCTURED_KEYS or not isinstance(value, (int, float, str)):
            continue
        out.append((FACT_LABELS.get(key, key), str(value)))
    return out


def split_names(info: Mapping[str, Any]) -> list[str]:
    """The split names of a description, in manifest order."""
    return [str(s) for s in (info.get("splits") or {})]


def _prevalence(st: Mapping[str, Any]) -> str:
    p = st.get("prevalence")
    return "—" if p is None else f"{float(p):.3f}"


def grouping_rows(info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per grouping: name, outside count, dropped groups and one row per group
    (``group``, ``n``, ``positives``, ``prevalence``, ``splits`` as a list in split order)."""
    splits = split_names(info)
    out = []
    for gname, g in (info.get("groupings") or {}).items():
        rows = [{
            "group": str(label),
            "n": st["n"],
            "positives": st.get("positives", "—"),
            "prevalence": _prevalence(st),
            "splits": [st.get("splits", {}).get(s, 0) for s in splits],
        } for label, st in g.get("groups", {}).items()]
        dropped = [{"group": str(k), "n": v} for k, v in (g.get("dropped") or {}).items()]
        out.append({"name": str(gname), "outside": g.get("outside", 0), "dropped": dropped, "rows": rows})
    return out


def card_rows(card: Mapping[str, Any], info: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The card as ``(label, value)`` rows; the description's values win where both have one."""
    info = info or {}
    classes = card.get("class_names") or ()
    num = info.get("num_classes", card.get("num_classes"))
    class_text = ", ".join(map(str, classes)) if classes else ""
    if num is not None:
        class_text = f"{num}" + (f" ({class_text})" if class_text else "")
    rows = [
        ("description", card.get("description") or ""),
        ("adapter", info.get("adapter") or card.get("adapter") or ""),
        ("task", info.get("task") or card.get("task") or ""),
        ("classes", class_text),
        ("license", card.get("license") or ""),
        ("citation", card.get("citation") or ""),
        ("url", card.get("url") or ""),
        ("caveats", " ".join(card.get("caveats") or ())),
        ("revision", info.get("revision") or ""),
        ("split hash", info.get("split_hash") or ""),
    ]
    return [(k, str(v) if v not in (None, "") else "—") for k, v in rows]


def verification(catalogue: Catalogue | None, name: str, card: Mapping[str, Any],
                 cache_dir: str | Path | None = None) -> str:
    """Whether the copy of ``name`` the catalogue points at was checked by ``medfairx datasets verify``."""
    from medfairx.data.verify import read_record, verification_text

    try:
        root = catalogue.dataset(name).root  # type: ignore[union-attr]  # no catalogue raises, handled below
        record = read_record(cache_dir or catalogue.cache_path, name, root)  # type: ignore[union-attr]  # as above
    except Exception:  # noqa: BLE001 - no catalogue or no such dataset: nothing was verified
        record = None
    return verification_text(record, has_facts=bool(card.get("published")))


def dataset_caveats(catalogue: Catalogue | str | Path | None, datasets: list[str]) -> dict[str, list[str]]:
    """The card caveats of each dataset that has some, without loading its data.

    A name not in the catalogue is looked up as an adapter name; unknown names have none.
    """
    from medfairx.plugins import get_host

    adapters = get_host().registry("datasets")
    out: dict[str, list[str]] = {}
    for name in dict.fromkeys(map(str, datasets)):
        card = static_card(catalogue, name)
        if not card and name in adapters:
            card = {"caveats": adapters.get(name).card.caveats}
        if card.get("caveats"):
            out[name] = [str(c) for c in card["caveats"]]
    return out


def page_name(dataset: str) -> str:
    """File name of the data card page of ``dataset``."""
    from medfairx.report.render import slug

    return f"data-{slug(dataset)}.html"


def write_data_cards(
    catalogue: Catalogue | str | Path | None,
    datasets: list[str],
    out_dir: Path,
    *,
    stored: Mapping[str, Mapping[str, Any]],
    suite: str | None = None,
    recorded: Mapping[str, Mapping[str, Any]] | None = None,
    cache_dir: str | Path | None = None,
) -> list[Path]:
    """Write ``out_dir/data-<dataset>.html`` for each dataset from the data cards the run
    store recorded; no dataset is loaded. A dataset without a recorded card still gets a
    page (its static card and how to record one).

    Args:
        catalogue: a :class:`~medfairx.config.Catalogue`, a yaml path or ``None`` (default
            catalogue): the static cards and the copy-verification records.
        datasets: catalogue names (duplicates are written once).
        out_dir: the leaderboard folder.
        stored: dataset → its recorded data card (:func:`medfairx.store.read_data_cards`).
        suite: shown in the header and breadcrumb (links back to ``index.html``).
        recorded: dataset → ``{"revisions": [...], "split_hashes": [...]}`` the runs used;
            a page warns when the recorded data differ.
        cache_dir: where the verification records are (default: the catalogue's cache).

    Returns:
        The pages written, in the order of ``datasets``.
    """
    from medfairx.report.render import (
        generated_now,
        make_environment,
        medfairx_version,
        render_page,
    )

    if not hasattr(catalogue, "datasets"):
        try:  # load the catalogue once, not once per dataset (None: load_catalogue(None))
            from medfairx.config import load_catalogue

            catalogue = load_catalogue(catalogue)
        except Exception:  # noqa: BLE001 - each page shows the error below
            pass
    env = make_environment()
    common = {"version": medfairx_version(), "generated": generated_now(), "suite": suite or ""}
    written: list[Path] = []
    for name in dict.fromkeys(map(str, datasets)):
        error, card, info = "", {}, None
        if name in stored:
            card, info = dict(stored[name]["card"]), dict(stored[name]["description"])
        else:
            error = NOT_RECORDED.format(name=name, suite=suite or "<suite>")
            card = static_card(catalogue, name)
        notes = []
        rec = (recorded or {}).get(name) or {}
        if info is not None:
            for label, key, have in (("revision", "revisions", info.get("revision")),
                                     ("split hash", "split_hashes", info.get("split_hash"))):
                used = sorted({str(v) for v in rec.get(key, ()) if v})
                if used and have not in used:
                    notes.append(f"The runs used {label} {', '.join(used)}; the data recorded by the last bench have {have}. "
                                 "The numbers below may not describe what the methods were trained on.")
        ctx = {
            "dataset": name,
            "error": error,
            "card": [*card_rows(card, info), ("copy verified", verification(
                None if isinstance(catalogue, (str, Path)) else catalogue, name, card, cache_dir))] if card else [],
            "facts": facts(info) if info is not None else [],
            "splits": split_names(info) if info is not None else [],
            "split_sizes": list((info or {}).get("splits", {}).items()),
            "overall": _overall(info),
            "patient_disjoint": None if info is None else bool(info.get("patient_disjoint")),
            "groupings": grouping_rows(info) if info is not None else [],
            "problems": list((info or {}).get("problems", [])),
            "warnings": list((info or {}).get("warnings", [])),
            "notes": notes,
        }
        written.append(render_page(env, "datacard.html", Path(out_dir) / page_name(name), **common, **ctx))
    return written


def _overall(info: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if info is None or "overall" not in info:
        return None
    st = info["overall"]
    return {"n": st["n"], "positives": st.get("positives", "—"), "prevalence": _prevalence(st),
            "splits": [st.get("splits", {}).get(s, 0) for s in split_names(info)]}

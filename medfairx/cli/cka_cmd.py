"""``medfairx cka``: linear CKA per layer between trained models, and ΔCKA (docs/methods.md §4.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from medfairx.fileio import atomic_write_csv, atomic_write_text

DELTA_ROLES = ("IN", "IN_less", "dom", "dom_less", "dom_qpi")


@click.command("cka")
@click.option("--model", "models", multiple=True, required=True, metavar="NAME=SOURCE",
              help="A model: a run folder or state.pt (saved weights), or method:<name> to train it here "
                   "(saved to <out>/models/NAME/state.pt and reused). Repeatable.")
@click.option("--pair", "pairs", multiple=True, metavar="A,B", help="Model pairs to compare (default: the first two).")
@click.option("--delta", is_flag=True,
              help="ΔCKA protocol: needs models IN, IN_less, dom, dom_less (and optionally dom_qpi).")
@click.option("--dataset", required=True, help="Catalogue dataset whose images are fed to both models.")
@click.option("--grouping", required=True, help="Grouping that selects the images (and trains group-aware methods).")
@click.option("--group", default=None, help="Images of this group (default: the smallest training group).")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--max-images", type=int, default=500, show_default=True, help="Seeded random subset of at most this many images.")
@click.option("--layers", default=None, help="Comma-separated module names (default: ResNet-18 points or every Conv/Linear).")
@click.option("--estimator", type=click.Choice(["full_linear", "minibatch_unbiased"]), default="full_linear", show_default=True)
@click.option("--batch-size", type=int, default=80, show_default=True, help="Forward batch (= minibatch of the unbiased estimator).")
@click.option("--suite", default=None, help="Suite whose recipe/backbone to use when training (default: first listing the dataset).")
@click.option("--config", type=click.Path(dir_okay=False), default=None, help="datasets.yaml.")
@click.option("--epochs", type=int, default=None, help="Override the recipe's epochs when training.")
@click.option("--backbone", default=None, help="Backbone when training (default: the suite's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Training seed and image-subset seed.")
@click.option("--device", default="auto", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder (CSV, SVG, trained models).")
def cka(models: tuple[str, ...], pairs: tuple[str, ...], delta: bool, dataset: str, grouping: str, group: str | None,
        split: str, max_images: int, layers: str | None, estimator: str, batch_size: int, suite: str | None,
        config: str | None, epochs: int | None, backbone: str | None, seed: int, device: str, out: str) -> None:
    """Linear CKA per layer between pairs of trained models on one group's images."""
    from medfairx.analysis.cka import cka_per_layer, cka_svg, delta_cka
    from medfairx.config import load_catalogue
    from medfairx.data import load_dataset
    from medfairx.errors import ConfigError
    from medfairx.plugins import get_host
    from medfairx.runner.state import fit_and_save, load_state

    host = get_host()
    catalogue = load_catalogue(config)
    ds = load_dataset(catalogue, dataset)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    suite_cfg = _suite(catalogue, suite, dataset)
    recipe = dict(suite_cfg.recipe or {}) if suite_cfg is not None else {}
    if epochs is not None:
        recipe["epochs"] = epochs
    bb = backbone or (dict(suite_cfg.backbones).get(ds.card.task) if suite_cfg is not None else None) or "tiny_cnn"

    nets: dict[str, Any] = {}
    for item in models:
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise ConfigError(f"--model {item!r} must look like NAME=SOURCE (a run folder, state.pt or method:<name>).")
        if source.startswith("method:"):
            click.echo(f"model {name}: training {source[7:]} (or reusing {out_dir / 'models' / name / 'state.pt'}) ...")
            method, _ = fit_and_save(source[7:], ds, grouping, out_dir / "models" / name / "state.pt", host=host,
                                     recipe=recipe, backbone=bb, seed=seed, device=device, log=click.echo)
        else:
            method, _ = load_state(Path(source), host, device="cpu" if device == "auto" else device)
        net = getattr(method, "model_", None)
        if net is None:
            raise ConfigError(f"Model {name!r} ({source}) has no trained network (model_); CKA needs one.")
        nets[name] = net

    images = _images(ds, split, grouping, group, max_images, seed)
    click.echo(f"{len(images)} {split} images of {grouping}={group or '(smallest group)'}")
    layer_list = [x for x in (layers or "").replace(",", " ").split()] or None

    def compare(a: str, b: str) -> Any:
        for n in (a, b):
            if n not in nets:
                raise ConfigError(f"No model named {n!r}; models are {sorted(nets)}.")
        return cka_per_layer(nets[a], nets[b], images, layers_a=layer_list, layers_b=layer_list,
                             estimator=estimator, batch_size=batch_size)

    written: list[Path] = []
    if delta:
        missing = [r for r in DELTA_ROLES[:4] if r not in nets]
        if missing:
            raise ConfigError(f"--delta needs models named {list(DELTA_ROLES[:4])} (+ optional dom_qpi); missing {missing}.")
        c1, c2m = compare("IN", "IN_less"), compare("dom", "dom_less")
        c2q = compare("dom", "dom_qpi") if "dom_qpi" in nets else None
        table = delta_cka(c1, c2m, c2q)
        written.append(out_dir / "delta_cka.csv")
        atomic_write_csv(written[-1], table)
        series = {"ΔCKA Mixed": table.rename(columns={"delta_mixed": "v"})}
        if c2q is not None:
            series["ΔCKA QPI"] = table.rename(columns={"delta_qpi": "v"})
        written.append(out_dir / "delta_cka.svg")
        atomic_write_text(written[-1], cka_svg(series, column="v", title="ΔCKA = CKA_2 − CKA_1 per layer",
                                               ylabel="ΔCKA") + "\n")
        for r in table.itertuples():
            extra = f"  qpi {r.delta_qpi:+.4f}" if c2q is not None else ""
            click.echo(f"  {r.label:10s} cka1 {r.cka1:.4f}  mixed {r.delta_mixed:+.4f}{extra}")
    else:
        chosen = [tuple(p.replace(" ", "").split(",")) for p in pairs] or [tuple(list(nets)[:2])]
        if any(len(p) != 2 for p in chosen):
            raise ConfigError(f"--pair takes two model names, e.g. --pair erm,qpnet; got {pairs}.")
        frames = {}
        for a, b in chosen:
            t = compare(a, b)
            t.insert(0, "pair", f"{a} vs {b}")
            frames[f"{a} vs {b}"] = t
            for r in t.itertuples():
                click.echo(f"  {a} vs {b}  {r.layer:28s} {r.cka:.4f}")
        import pandas as pd

        written.append(out_dir / "cka.csv")
        atomic_write_csv(written[-1], pd.concat(frames.values(), ignore_index=True))
        written.append(out_dir / "cka.svg")
        atomic_write_text(written[-1], cka_svg(frames, title=f"Linear CKA per layer ({estimator})") + "\n")
    for p in written:
        click.echo(f"wrote {p}")


def _suite(catalogue: Any, name: str | None, dataset: str) -> Any:
    if name is not None:
        return catalogue.suites[name]
    for s in catalogue.suites.values():
        if dataset in s.datasets:
            return s
    return None


def _images(ds: Any, split: str, grouping: str, group: str | None, max_images: int, seed: int) -> Any:
    """The chosen group's images of ``split`` (seeded subset of at most ``max_images``)."""
    import numpy as np

    from medfairx.errors import ConfigError

    data = ds.task_data(split, grouping)
    names = list(data.group_names)
    if group is None:
        train = ds.task_data("train", grouping)
        counts = np.bincount(train.groups[train.groups >= 0], minlength=len(names))
        code = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
    elif group in names:
        code = names.index(group)
    else:
        raise ConfigError(f"--group {group!r} is not a group of {grouping!r}: {names}.")
    idx = np.flatnonzero(data.groups == code)
    if idx.size > max_images:
        idx = np.sort(np.random.default_rng([seed, 2718]).choice(idx, max_images, replace=False))
    if idx.size < 4:
        raise ConfigError(f"Only {idx.size} {split} images in group {names[code]!r}; CKA needs at least 4.")
    return data.images[idx]

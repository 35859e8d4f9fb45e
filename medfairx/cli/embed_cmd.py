"""``medfairx embed``: compute (or refresh) the frozen-encoder embedding cache explicitly."""

from __future__ import annotations

from typing import Any

import click


@click.command("embed")
@click.option("--suite", default=None, help="Embed every classification dataset of this suite with its `encoder:`.")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="datasets.yaml (default: ./datasets.yaml or the embedded catalogue).")
@click.option("--dataset", "datasets", multiple=True, help="Dataset(s) to embed (with --backbone, or narrowing --suite).")
@click.option("--backbone", default=None, help="Encoder, e.g. efficientnet_lite0, timm:resnet18 (default: the suite's).")
@click.option("--pretrained/--random-init", default=None, help="Pretrained weights (default: the suite's, else pretrained).")
@click.option("--weights", type=click.Path(dir_okay=False), default=None, help="A local weights file.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Images per forward pass (default 64).")
@click.option("--device", default="cpu", show_default=True, help="Where the encoder runs (cpu, cuda).")
@click.option("--refresh", is_flag=True, help="Recompute even when a valid cache exists.")
def embed(suite: str | None, config: str | None, datasets: tuple[str, ...], backbone: str | None,
          pretrained: bool | None, weights: str | None, batch_size: int | None, device: str, refresh: bool) -> None:
    """Run the encoder once over every image and cache the features (what linear_probe / knn suites train on)."""
    import dataclasses

    from medfairx.config import load_catalogue
    from medfairx.data import load_dataset
    from medfairx.data.embeddings import EncoderChoice
    from medfairx.errors import ConfigError
    from medfairx.methods.embedding import embed_dataset
    from medfairx.runner.progress import make_display

    catalogue = load_catalogue(config)
    suite_cfg = catalogue.suite(suite) if suite else None
    names = list(datasets) or (list(suite_cfg.datasets) if suite_cfg else [])
    if not names:
        raise ConfigError("medfairx embed: give --suite S, or --dataset D (with --backbone B).")
    choice = EncoderChoice.from_config(suite_cfg.encoder if suite_cfg else None)
    changes: dict[str, Any] = {k: v for k, v in {"backbone": backbone, "pretrained": pretrained, "weights": weights,
                                  "batch_size": batch_size}.items() if v is not None}
    choice = dataclasses.replace(choice, **changes)
    with make_display() as display:  # a live images bar in a terminal, plain lines otherwise
        for name in names:
            ds = load_dataset(catalogue, name)
            if ds.card.task != "classification":
                display(f"{name}: {ds.card.task} trains end to end; nothing to embed")
                continue
            emb = embed_dataset(ds, choice, catalogue.cache_path, refresh=refresh, device=device, echo=display)
            rate = f", {emb.images_per_second:.1f} images/s" if emb.encoded else " (cache up to date)"
            display(f"{name}: {emb.encoded:,} images encoded{rate}; {emb.features.shape[0]:,} x "
                    f"{emb.features.shape[1]} features in {emb.path}")

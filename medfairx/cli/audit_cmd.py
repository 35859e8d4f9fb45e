"""``medfairx audit FILE``: fairness audit of outside predictions (CSV or Parquet)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("audit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--label", default=None, help="Label column (0/1; 0..K-1 with K score columns).")
@click.option("--score", multiple=True, help="P(positive) column; one column per class for multi-class (repeat or comma-separate).")
@click.option("--sensitive", multiple=True, help="Attribute column(s), one grouping each (repeat or comma-separate).")
@click.option("--bins", multiple=True, metavar="COL=CUT,CUT",
              help="Numeric bins of an attribute, right-closed as in datasets.yaml: age=40,60,80 gives <=40, (40, 60], (60, 80], >80.")
@click.option("--intersect", multiple=True, metavar="COL,COL", help="Intersection grouping, e.g. sex,age (repeatable).")
@click.option("--split-col", default=None, help="Column naming the validation part; thresholds are chosen on its rows only.")
@click.option("--val-value", default="val", show_default=True, help="Value of --split-col marking validation rows; all others are audited.")
@click.option("--id-col", default=None, help="Sample id column (default: the row number).")
@click.option("--task", type=click.Choice(["classification", "segmentation"]), default="classification", show_default=True,
              help="segmentation: per-sample mask metric columns (dice, iou, hd95, nsd, ...) instead of label/score.")
@click.option("--threshold-policy", default="f1", show_default=True, help="f1, youden, sensitivity:x, specificity:x or fixed:t.")
@click.option("--model", default="model", show_default=True, help="Name of the audited model on the pages.")
@click.option("--dataset", default=None, help="Name of the data on the pages (default: the file name).")
@click.option("--n-boot", type=int, default=1000, show_default=True, help="Bootstrap resamples for CIs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: audit-<file name>).")
def audit(file: str, label: str | None, score: tuple[str, ...], sensitive: tuple[str, ...], bins: tuple[str, ...],
          intersect: tuple[str, ...], split_col: str | None, val_value: str, id_col: str | None, task: str,
          threshold_policy: str, model: str, dataset: str | None, n_boot: int, seed: int, out_dir: str | None) -> None:
    """Audit a model trained elsewhere from a CSV or Parquet of its predictions.

    Writes the leaderboard's group pages, results.csv (bootstrap and DeLong CIs),
    provenance.json and audit.json.
    """
    from medfairx.report.audit import audit as run_audit

    result = run_audit(Path(file), label=label, score=list(score), sensitive=list(sensitive), bins=list(bins),
                       intersect=list(intersect), split_col=split_col, val_value=val_value, id_col=id_col, task=task,
                       n_boot=n_boot, seed=seed, threshold_policy=threshold_policy, model=model, dataset=dataset)
    target = Path(out_dir) if out_dir else Path(f"audit-{Path(file).name.split('.')[0]}")
    result.write(target)
    for note in result.notes:
        click.secho(f"warning: {note}", fg="yellow", err=True)
    click.echo(f"audit: {target / 'index.html'}")

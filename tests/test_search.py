"""Hyper-parameter search: declared spaces, their checks, the Optuna loop, resume and the
validation-only choice of configurations."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from medfairx import hookimpl
from medfairx.config import load_catalogue
from medfairx.contracts import RunSpec
from medfairx.errors import ConfigError, SearchSpaceError
from medfairx.methods.trainable import TrainableMethod
from medfairx.plugins import make_plugin_host
from medfairx.runner.bench import BenchOptions, run_bench
from medfairx.runner.search import (
    SELECTION_FILE,
    SearchUnit,
    choose,
    objective_value,
    read_selection,
    search_root,
)
from medfairx.search_space import apply_sample, sample_space, space_of, space_problems
from medfairx.specs import Choice, IntRange, LogUniform, MethodSpec, MethodTags, Uniform, distribution_from_dict
from medfairx.store import RunStore
from medfairx.testing.checks_method import (
    check_search_space_names,
    check_search_space_samples_fit,
    method_subject,
)
from medfairx.testing.report import CheckFailure

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = """
version: 1
include: [embedded]
datasets:
  tiny_cls:
    adapter: synthetic
    task: classification
    image_size: 16
    split: {train: 0.6, val: 0.2, test: 0.2, seed: 0}
    options: {seed: 0, n_samples: 240, spatial_dims: 2, channels: 1}
    groupings:
      group: {column: group}
      site: {column: site}
suites:
  tiny:
    datasets: {tiny_cls: [group, site]}
    methods: [erm]
    seeds: [0]
    params: test
    backbones: {classification: tiny_cnn}
    recipe: {epochs: 2, batch_size: 32}
    device: cpu
    search: {trials: TRIALS, sampler: random, seed: 7}
"""


class Knobs(TrainableMethod):
    """ERM with a dummy knob, for spaces declared by a third party."""

    def __init__(self, knob: float = 1.0, recipe: dict | None = None) -> None:
        super().__init__(recipe=recipe)
        self.knob = knob


def _spec(space: dict) -> MethodSpec:
    return MethodSpec("knobs", Knobs, MethodTags(), summary="knobs", reference="-", search_space=space)


# --- spaces ----------------------------------------------------------------------------------


def test_empty_ranges_and_unknown_names_are_problems() -> None:
    assert LogUniform(1e-2, 1e-3).problems() and Uniform(1.0, 1.0).problems() and IntRange(3, 3).problems()
    assert Choice([]).problems() and Choice(["a"]).problems() and LogUniform(0.0, 1.0).problems()
    assert not LogUniform(1e-5, 1e-2).problems() and not Choice(("a", "b")).problems()
    problems = space_problems(_spec({"nope": Uniform(0, 1), "knob": Uniform(2, 1), "lr": LogUniform(1e-4, 1e-2)}), Knobs)
    assert len(problems) == 2
    assert "'nope' is not an __init__ argument (it takes: knob, recipe)" in problems[0]
    assert "'knob'" in problems[1] and "empty range" in problems[1]


def test_grid_points_and_samples_stay_in_range() -> None:
    assert LogUniform(1e-4, 1e-2).grid() == pytest.approx([1e-4, 1e-3, 1e-2])
    assert IntRange(0, 3).grid() == [0, 1, 2, 3] and IntRange(5, 50, 5).grid() == [5, 25, 50]
    rng = random.Random(0)
    draws = [sample_space({"a": LogUniform(1e-4, 1e-2), "k": IntRange(5, 50, 5), "c": Choice(("x", "y"))}, rng)
             for _ in range(200)]
    assert all(1e-4 <= d["a"] <= 1e-2 and d["k"] in range(5, 51, 5) and d["c"] in ("x", "y") for d in draws)
    logs = np.log10([d["a"] for d in draws])  # log-uniform: about half the draws below the geometric middle
    assert 0.35 < np.mean(logs < -3) < 0.65


def test_recipe_keys_reach_the_method_through_its_recipe() -> None:
    spec = _spec({"knob": Uniform(0, 1)})
    assert list(space_of(spec, Knobs)) == ["lr", "weight_decay", "knob"]  # the recipe's shared defaults first
    params = apply_sample({"recipe": {"epochs": 2}}, {"lr": 0.01, "knob": 0.5}, Knobs)
    assert params == {"recipe": {"epochs": 2, "lr": 0.01}, "knob": 0.5}
    m = Knobs(**params)
    assert m.knob == 0.5 and m.recipe["lr"] == 0.01


def test_conformance_kit_names_a_bad_space() -> None:
    with pytest.raises(CheckFailure, match=r"'nope' is not an __init__ argument"):
        check_search_space_names(method_subject(_spec({"nope": Uniform(0, 1)})))
    with pytest.raises(CheckFailure, match=r"empty range"):
        check_search_space_names(method_subject(_spec({"knob": LogUniform(1.0, 0.1)})))
    check_search_space_names(method_subject("groupdro"))


def test_sampled_configurations_of_a_declared_space_fit() -> None:
    torch.set_num_threads(1)
    check_search_space_samples_fit(method_subject("groupdro"))
    check_search_space_samples_fit(method_subject(_spec({"knob": Uniform(0, 1)})))


def test_list_methods_json_shows_the_space() -> None:
    from medfairx.cli import cli

    out = CliRunner().invoke(cli, ["list", "methods", "groupdro", "--json"])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.output)
    assert row["search_space"]["eta"] == {"type": "log_uniform", "low": 0.001, "high": 0.1}
    out = CliRunner().invoke(cli, ["list", "methods", "resampling", "--json"])
    (row,) = json.loads(out.output)
    assert row["task_search_space"] == {"segmentation": {"resample_which": None}}
    (row,) = json.loads(CliRunner().invoke(cli, ["list", "methods", "spare", "--json"]).output)
    assert row["backbone_search_space"] == {"linear": {"sharing": {"type": "choice", "values": ["none", "mini", "full"]}}}


def test_bench_refuses_a_bad_space_before_training(tmp_path: Path) -> None:
    @hookimpl
    def register_methods(register):  # type: ignore[no-untyped-def]
        register(_spec({"nope": IntRange(0, 3)}))

    plugin = types.ModuleType("bad_space")
    plugin.register_methods = register_methods  # type: ignore[attr-defined]
    host = make_plugin_host(extra=(plugin,))
    cfg = tmp_path / "datasets.yaml"
    cfg.write_text(CATALOGUE.replace("TRIALS", "2").replace("methods: [erm]", "methods: [knobs]"))
    with pytest.raises(SearchSpaceError, match=r"Method 'knobs' .* 'nope' is not an __init__ argument"):
        run_bench(load_catalogue(cfg), BenchOptions(suite="tiny", out=tmp_path / "runs"), host, lambda _: None)
    assert not list((tmp_path / "runs" / "tiny").glob("*/run.json"))  # nothing was trained


def test_task_entries_replace_or_drop_a_declared_entry() -> None:
    from medfairx.runner.search import search_units

    spec = make_plugin_host().registry("methods").get("resampling")
    cls = spec.load()
    assert "resample_which" in space_of(spec, cls, "classification")
    assert "resample_which" not in space_of(spec, cls, "segmentation") and "lr" in space_of(spec, cls, "segmentation")
    assert not space_problems(spec, cls)
    runs = [RunSpec(suite="s", method="resampling", dataset=d, seed=0, train_grouping="g", groupings=("g",))
            for d in ("cls", "seg")]
    units = search_units(runs, make_plugin_host(), {"cls": "classification", "seg": "segmentation"})
    assert ["resample_which" in u.space for u in units] == [True, False]
    bad = MethodSpec("knobs", Knobs, MethodTags(), search_space={"knob": Uniform(0, 1)},
                     task_search_space={"segmentation": {"knob": None},
                                        "classification": {"nope": None, "knob": Uniform(1, 0)}})
    problems = space_problems(bad, Knobs)
    assert any("'segmentation' is not one of the method's tasks" in p for p in problems)
    assert any("'nope' drops nothing" in p for p in problems)
    assert any("task_search_space['classification']: 'knob'" in p and "empty range" in p for p in problems)


def test_backbone_entries_narrow_the_space_for_that_network() -> None:
    from medfairx.runner.search import search_units

    host = make_plugin_host()
    spec = host.registry("methods").get("spare")
    cls = spec.load()
    assert "half" in space_of(spec, cls, "classification", "tiny_cnn")["sharing"].values
    assert space_of(spec, cls, "classification", "linear")["sharing"] == Choice(("none", "mini", "full"))
    runs = [RunSpec(suite="s", method="spare", dataset="d", seed=0, train_grouping="g", groupings=("g",), backbone=b)
            for b in ("linear", "tiny_cnn")]
    units = search_units(runs[:1], host, {"d": "classification"}) + search_units(runs[1:], host, {"d": "classification"})
    assert ["half" in u.space["sharing"].values for u in units] == [False, True]
    assert units[0].study_name != units[1].study_name
    bad = MethodSpec("knobs", Knobs, MethodTags(), search_space={"knob": Uniform(0, 1)},
                     backbone_search_space={"linear": {"nope": None, "knob": Uniform(1, 0)}})
    problems = space_problems(bad, Knobs)
    assert any("backbone_search_space['linear']: 'nope' drops nothing" in p for p in problems)
    assert any("backbone_search_space['linear']: 'knob'" in p and "empty range" in p for p in problems)


def test_conformance_kit_samples_every_task_of_a_method() -> None:
    torch.set_num_threads(1)
    check_search_space_samples_fit(method_subject("resampling"))  # segmentation draws leave out 'balanced'


def test_suite_distributions_read_the_json_form_or_a_list() -> None:
    for dist in (Uniform(0.0, 1.0), LogUniform(1e-4, 1e-2), IntRange(5, 50, 5), Choice(("a", 1, None))):
        assert distribution_from_dict(dist.to_dict()) == dist
    assert distribution_from_dict(["none", "mini"]) == Choice(("none", "mini"))
    with pytest.raises(ValueError, match=r"not a distribution: write a list of choices or \{type: uniform"):
        distribution_from_dict({"type": "normal", "mean": 0})
    with pytest.raises(ValueError, match=r"a log_uniform takes low, high"):
        distribution_from_dict({"type": "log_uniform", "low": 1e-3, "hi": 1e-2})
    with pytest.raises(ValueError, match=r"empty range"):
        distribution_from_dict({"type": "int", "low": 3, "high": 3})


def _space_catalogue(tmp_path: Path, space: str) -> Path:
    cfg = tmp_path / "datasets.yaml"
    cfg.write_text(CATALOGUE.replace("TRIALS", "2").replace("seed: 7}", f"seed: 7, space: {space}}}"))
    return cfg


def test_suite_space_errors_name_the_entry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"search.space.erm.lr: .*empty range"):
        load_catalogue(_space_catalogue(tmp_path, "{erm: {lr: {type: log_uniform, low: 0.1, high: 0.01}}}"))
    for space, error, match in (
        ("{groupdro: {eta: [0.1, 0.2]}}", ConfigError, r"search.space names 'groupdro', which the suite does not run"),
        ("{erm: {nope: [1, 2]}}", SearchSpaceError, r"search.space.erm: 'nope' is not an __init__ argument"),
    ):
        cat = load_catalogue(_space_catalogue(tmp_path, space))
        with pytest.raises(error, match=match):
            run_bench(cat, BenchOptions(suite="tiny", out=tmp_path / "runs"), make_plugin_host(), lambda _: None)
        assert not (tmp_path / "runs" / "tiny").exists() or not list((tmp_path / "runs" / "tiny").glob("*/run.json"))


def test_a_changed_space_is_a_new_study() -> None:
    run = RunSpec(suite="s", method="erm", dataset="d", seed=0, train_grouping=None, groupings=("g",))
    a = SearchUnit(run, {"lr": LogUniform(1e-5, 1e-2)}, Knobs, "classification")
    b = SearchUnit(run, {"lr": LogUniform(1e-4, 1e-2)}, Knobs, "classification")
    assert a.study_name != b.study_name and a.study_name.startswith("erm-d-all-")
    assert a.study_name == SearchUnit(run, {"lr": LogUniform(1e-5, 1e-2)}, Knobs, "classification").study_name


def test_search_seed_must_differ_from_the_suite_seeds(tmp_path: Path) -> None:
    cfg = tmp_path / "datasets.yaml"
    cfg.write_text(CATALOGUE.replace("TRIALS", "2").replace("seed: 7}", "seed: 0}"))
    with pytest.raises(ConfigError, match=r"search.seed 0 is one of the suite's seeds"):
        load_catalogue(cfg)


# --- the search loop ---------------------------------------------------------------------------


def _command(tmp: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "medfairx.cli", "bench", "--config", str(tmp / "datasets.yaml"), "--suite", "tiny",
            "--out", str(tmp / "runs"), "--no-report", *extra]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFAIRX_")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _trial_records(tmp: Path) -> dict[str, dict]:
    return {r["run_id"]: r for r in RunStore(search_root(tmp / "runs" / "tiny") / "trials").records()}


@pytest.mark.slow
def test_killed_search_resumes_without_losing_or_redoing_trials(tmp_path: Path) -> None:
    (tmp_path / "datasets.yaml").write_text(CATALOGUE.replace("TRIALS", "4"))
    proc = subprocess.Popen(_command(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(),
                            cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while len([r for r in _trial_records(tmp_path).values() if r["status"] == "ok"]) < 2:
            assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {k: r["started"] for k, r in _trial_records(tmp_path).items() if r["status"] == "ok"}
    assert 2 <= len(before) < 4
    rerun = subprocess.run(_command(tmp_path), capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=900)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    after = _trial_records(tmp_path)
    assert all(after[k]["started"] == started for k, started in before.items())  # no finished trial redone
    selection = read_selection(tmp_path / "runs" / "tiny")
    (unit,) = selection["units"]
    assert [t["state"] for t in unit["trials"]] == ["COMPLETE"] * 4  # no trial lost, none left running
    assert {t["run_id"] for t in unit["trials"]} == set(after) and len(after) == 4
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(search_root(tmp_path / "runs" / "tiny") / "study.journal")))
    (study,) = optuna.get_all_study_summaries(storage)
    assert study.n_trials == 4
    again = subprocess.run(_command(tmp_path), capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=900)
    assert again.returncode == 0 and "0 ran" in again.stdout  # a finished search trains nothing


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("search")
    (root / "datasets.yaml").write_text(CATALOGUE.replace("TRIALS", "3").replace("methods: [erm]",
                                                                                 "methods: [erm, groupdro]")
                                        .replace("seed: 7}", "seed: 7, space: {erm: {lr: {type: uniform, "
                                                             "low: 0.001, high: 0.002}}}}"))
    result = run_bench(load_catalogue(root / "datasets.yaml"), BenchOptions(suite="tiny", out=root / "runs"),
                       make_plugin_host(), lambda _: None)
    assert not result.failed
    return root / "runs" / "tiny"


def test_group_unaware_methods_are_searched_once_per_dataset(searched: Path) -> None:
    units = {(u["method"], u["train_grouping"]) for u in read_selection(searched)["units"]}
    assert units == {("erm", None), ("groupdro", "group"), ("groupdro", "site")}
    for u in read_selection(searched)["units"]:
        assert len(u["trials"]) == 3
        for g in u["groupings"]:
            assert set(u["choices"][g]) >= {"overall", "worst_group", "pareto", "dto", "final"}
    # trials and tuned runs are stores of their own: the suite's own board sees only its runs
    from medfairx.metrics.evaluate import evaluate_runs

    assert set(evaluate_runs(searched, n_boot=0, metrics=["auc"])["seed"]) == {0}


def test_tuned_runs_are_the_chosen_configurations_on_the_suite_seeds(searched: Path) -> None:
    tuned = RunStore(search_root(searched) / "tuned")
    for u in read_selection(searched)["units"]:
        trials = {t["number"]: t for t in u["trials"]}
        for g, choices in u["choices"].items():
            for choice in choices.values():
                (run_id,) = choice["run_ids"]
                rec = tuned.record(run_id)
                assert rec["status"] == "ok" and rec["seed"] == 0 and g in rec["groupings"]
                trial_params = RunStore(search_root(searched) / "trials").record(trials[choice["trial"]]["run_id"])["params"]
                assert rec["params"] == trial_params
    # strategies (and groupings) that choose the same trial share its tuned runs: one per trial and seed
    chosen = {(u["study"], c["trial"]): tuple(c["run_ids"]) for u in read_selection(searched)["units"]
              for per in u["choices"].values() for c in per.values()}
    assert len(set(chosen.values())) == len(chosen)
    assert len(list(tuned.records())) == len({r for ids in chosen.values() for r in ids})


def _permute_test_labels(root: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("predictions.parquet", "epochs.parquet"):
        for path in root.glob(f"*/{name}"):
            frame = pd.read_parquet(path)
            test = frame["split"] == "test"
            frame.loc[test, "y_true"] = rng.permutation(frame.loc[test, "y_true"].to_numpy())
            frame.to_parquet(path)


def test_permuting_test_labels_changes_no_choice(searched: Path, tmp_path: Path) -> None:
    import shutil

    from medfairx.plugins import get_host

    copy = tmp_path / "trials"
    shutil.copytree(search_root(searched) / "trials", copy)
    _permute_test_labels(copy)
    selection = read_selection(searched)
    strategies = {n: get_host().registry("selection_strategies").get(n).load() for n in selection["strategies"]}
    for u in selection["units"]:
        ok = [t for t in u["trials"] if t["state"] == "COMPLETE"]
        values = [objective_value(copy / t["run_id"], task="classification", groupings=tuple(u["groupings"]),
                                  objective="auc") for t in ok]
        assert values == pytest.approx([t["value"] for t in ok])  # the objective read validation only
        candidates = [(t["number"], copy / t["run_id"], v) for t, v in zip(ok, values, strict=False)]
        for g in u["groupings"]:
            for name, fn in strategies.items():
                picked = choose(candidates, task="classification", grouping=g, strategy=fn, name=name)
                assert picked == u["choices"][g][name]["trial"], (u["study"], g, name)
    # and the permutation did change what the test rows say
    (first,) = [p for p in sorted(copy.glob("*/predictions.parquet"))][:1]
    original = pd.read_parquet(search_root(searched) / "trials" / first.parent.name / "predictions.parquet")
    assert not original["y_true"].equals(pd.read_parquet(first)["y_true"])


def test_selection_file_records_the_budget(searched: Path) -> None:
    data = json.loads((search_root(searched) / SELECTION_FILE).read_text())
    assert data["search"]["trials"] == 3 and data["search"]["sampler"] == "random" and data["seeds"] == [0]
    assert all(t["duration_s"] > 0 for u in data["units"] for t in u["trials"])
    (erm,) = [u for u in data["units"] if u["method"] == "erm"]  # the suite's space replaced the recipe's lr
    assert erm["space"]["lr"] == {"type": "uniform", "low": 0.001, "high": 0.002}
    assert all(0.001 <= t["params"]["lr"] <= 0.002 for t in erm["trials"])


def test_search_page_shows_budget_choices_and_defaults_vs_tuned(searched: Path, tmp_path: Path) -> None:
    from medfairx.metrics.evaluate import evaluate_runs
    from medfairx.report.search import (
        rank_views,
        search_tables,
        tuned_results,
        write_search_page,
    )

    budget, choices = search_tables(searched)
    assert set(budget["method"]) == {"erm", "groupdro"} and (budget["trials"] == 3).all()
    assert (budget["device_hours"] > 0).all() and (budget["val_min"] <= budget["val_max"]).all()
    assert set(choices["strategy"]) >= {"overall", "worst_group", "pareto", "dto", "final"}
    tuned = tuned_results(searched, ["overall", "worst_group"])
    assert set(tuned["strategy"]) == {"overall", "worst_group"} and set(tuned["seed"]) == {0}
    # one configuration per (method, grouping, strategy): the tuned table has one value per cell and seed
    cells = tuned[(tuned["metric"] == "auc") & (tuned["scope"] == "overall")]
    assert not cells.duplicated(["method", "dataset", "grouping", "strategy", "seed"]).any()
    defaults = evaluate_runs(searched, n_boot=0, metrics=["auc"])
    (view,) = rank_views(defaults, tuned, "auc", ["overall"])
    assert {m for m, _ in view["defaults"]["ranks"]} == {m for m, _ in view["tuned"]["ranks"]} == {"erm", "groupdro"}
    pages = write_search_page(searched, tmp_path, defaults, suite="tiny")
    html = (tmp_path / "search.html").read_text()
    assert len(pages) == 2 and "Defaults vs tuned" in html and "eta=" in html
    assert "Against the reference" in html
    assert "significantly better than erm" in html or "no test" in html  # this tiny suite has too few blocks


class Flaky(TrainableMethod):
    """ERM that fails to train when its knob says so: a trial that fails."""

    def __init__(self, mode: str = "ok", recipe: dict | None = None) -> None:
        super().__init__(recipe=recipe)
        self.mode = mode

    def fit(self, train, val, ctx):  # type: ignore[no-untyped-def]
        if self.mode == "boom":
            raise RuntimeError("this configuration cannot train")
        return super().fit(train, val, ctx)


def test_a_failed_trial_counts_and_is_told_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFAIRX_TRACKING", "none")
    torch.set_num_threads(1)

    @hookimpl
    def register_methods(register):  # type: ignore[no-untyped-def]
        register(MethodSpec("flaky", Flaky, MethodTags(), summary="flaky", reference="-",
                            search_space={"mode": Choice(("ok", "fine", "boom"))}))

    plugin = types.ModuleType("flaky_method")
    plugin.register_methods = register_methods  # type: ignore[attr-defined]
    cfg = tmp_path / "datasets.yaml"
    cfg.write_text(CATALOGUE.replace("TRIALS", "4").replace("methods: [erm]", "methods: [flaky]")
                   .replace("[group, site]", "[group]"))
    from medfairx.runner import search

    scored: list[Path] = []

    def first_unscorable(run_dir: Path, **kw):  # type: ignore[no-untyped-def]
        scored.append(run_dir)
        if len(scored) == 1:
            raise ConfigError("validation rows unreadable")
        return objective_value(run_dir, **kw)

    monkeypatch.setattr(search, "objective_value", first_unscorable)
    opts = {"suite": "tiny", "out": tmp_path / "runs"}
    lines: list[str] = []
    result = run_bench(load_catalogue(cfg), BenchOptions(**opts), make_plugin_host(extra=(plugin,)), lines.append)
    (unit,) = read_selection(tmp_path / "runs" / "tiny")["units"]
    modes = [t["params"]["mode"] for t in unit["trials"]]
    assert modes.count("boom") >= 1 and len(modes) - modes.count("boom") >= 2  # the search seed draws both
    unscorable = next(t["number"] for t in unit["trials"] if t["run_id"] == scored[0].name)
    assert [t["state"] for t in unit["trials"]] == [
        "FAIL" if m == "boom" or t["number"] == unscorable else "COMPLETE" for m, t in zip(modes, unit["trials"], strict=False)]
    assert len(result.failed) == modes.count("boom")
    assert any("cannot be scored: ConfigError: validation rows unreadable" in line for line in lines)
    assert any("this configuration cannot train" in line for line in lines)
    for choices in unit["choices"].values():  # a failed trial is never chosen
        assert all(unit["trials"][c["trial"]]["state"] == "COMPLETE" for c in choices.values())
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(search_root(tmp_path / "runs" / "tiny") / "study.journal")))
    study = optuna.load_study(study_name=unit["study"], storage=storage)
    assert [t.state.name for t in study.trials] == [t["state"] for t in unit["trials"]]  # none left RUNNING
    # the failed trial counts toward the budget: a rerun asks nothing new
    run_bench(load_catalogue(cfg), BenchOptions(**opts), make_plugin_host(extra=(plugin,)), lambda _: None)
    assert len(read_selection(tmp_path / "runs" / "tiny")["units"][0]["trials"]) == 4


def test_index_links_the_search_page(searched: Path, tmp_path: Path) -> None:
    from medfairx.report.writer import write_report

    index = write_report(searched, tmp_path / "tiny", n_boot=0, echo=lambda _: None)
    assert 'href="search.html"' in index.read_text() and (tmp_path / "tiny" / "search.html").is_file()


def test_versus_reference_lists_methods_more_than_a_critical_difference_from_erm() -> None:
    from medfairx.report.search import versus_reference

    ranks = {"erm": 5.0, "a": 1.5, "b": 9.0, "c": 2.5, "d": 8.0}
    out = versus_reference(ranks, cd=3.0, friedman_p=0.01)
    assert out is not None and out["better"] == ["a"] and out["worse"] == ["b"]  # c is 2.5 and d 3.0 apart: not more
    quiet = versus_reference(ranks, cd=3.0, friedman_p=0.2)
    assert quiet is not None and quiet["better"] == quiet["worse"] == [] and "no method differs" in quiet["why"]
    assert versus_reference({"a": 1.0, "b": 2.0}, cd=0.5, friedman_p=0.01) is None  # no erm ranked
    assert versus_reference(ranks, cd=None, friedman_p=None) is None  # too few blocks: no test

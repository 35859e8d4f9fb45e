"""Catalogue loading and validation (medfairx.config)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from medfairx.config import EMBEDDED_CATALOGUE, Catalogue, load_catalogue
from medfairx.contracts import TrainRecipe
from medfairx.errors import ConfigError, UnknownNameError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "datasets.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_catalogue(path)
    return str(info.value)


def test_repo_catalogue_loads_and_includes_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDFAIRX_DATA", raising=False)
    monkeypatch.delenv("MEDFAIRX_CACHE", raising=False)
    cat = load_catalogue(REPO / "datasets.yaml")
    assert isinstance(cat, Catalogue) and cat.path == REPO / "datasets.yaml"
    assert {"synthetic_cls", "synthetic_seg", "synthetic_seg3d", "ham10000", "ham10000_seg"} <= set(cat.datasets)
    assert {"default", "default3d", "ham10000", "ham10000_seg"} <= set(cat.suites)
    ham = cat.datasets["ham10000"]
    # ${MEDFAIRX_DATA:-../shared/data}/ham10000, relative to the yaml's directory
    assert ham.root == Path(os.path.normpath(REPO / ".." / "shared" / "data" / "ham10000"))
    assert cat.cache_dir == REPO / ".medfairx-cache"
    assert ham.name == "ham10000" and ham.label is not None and ham.label.positive == ["mel", "bcc", "akiec"]
    assert cat.source_of("synthetic_cls") == EMBEDDED_CATALOGUE
    assert cat.source_of("ham10000") == REPO / "datasets.yaml"
    assert ham.groupings["age"].bins == [60] and ham.group_min_size("sex") == 20
    suite = cat.suites["ham10000"]
    assert suite.seeds == [0, 1, 2] and suite.datasets == {"ham10000": ["sex", "age", "age4", "site", "sex_x_age"]}
    recipe = suite.train_recipe()
    assert isinstance(recipe, TrainRecipe) and recipe.epochs == suite.recipe["epochs"]  # suite overrides applied


def test_embedded_default_suite() -> None:
    cat = load_catalogue(EMBEDDED_CATALOGUE)
    default = cat.suites["default"]
    assert set(default.datasets) == {"synthetic_cls", "synthetic_seg"}
    assert all(len(g) >= 2 for g in default.datasets.values())
    assert default.params in ("default", "test") and default.time_budget_s <= 300  # the 5-minute budget
    assert default.train_recipe().epochs >= 1
    assert cat.datasets["synthetic_seg3d"].options["spatial_dims"] == 3


def test_env_expansion_with_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        """
        version: 1
        cache_dir: ${MFX_TEST_CACHE:-cache}
        datasets:
          d: {adapter: synthetic, root: "${MFX_TEST_ROOT:-data}/x"}
        """,
    )
    monkeypatch.delenv("MFX_TEST_ROOT", raising=False)
    monkeypatch.delenv("MFX_TEST_CACHE", raising=False)
    cat = load_catalogue(path)
    assert cat.datasets["d"].root == tmp_path / "data" / "x"
    assert cat.cache_dir == tmp_path / "cache"
    monkeypatch.setenv("MFX_TEST_ROOT", "/elsewhere")
    assert load_catalogue(path).datasets["d"].root == Path("/elsewhere/x")


def test_unset_env_without_default_names_variable_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MFX_TEST_UNSET", raising=False)
    path = write(tmp_path, "version: 1\ndatasets:\n  d: {adapter: synthetic, root: '${MFX_TEST_UNSET}'}\n")
    msg = error_of(path)
    assert "MFX_TEST_UNSET" in msg and "datasets.d.root" in msg and str(path) in msg


def test_unknown_key_names_file_key_line_and_allowed_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        version: 1
        datasets:
          d:
            adapter: synthetic
            groupings:
              sex: {colum: sex}
        """,
    )
    msg = error_of(path)
    assert f"{path}:7: datasets.d.groupings.sex.colum" in msg  # line 7 (dedent keeps the leading newline)
    assert "allowed keys: column, map, bins" in msg and "did you mean 'column'" in msg


def test_unknown_top_level_and_dataset_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\ndatset: {}\ndatasets:\n  d: {adapter: synthetic, img_size: 3}\n")
    msg = error_of(path)
    assert "datset" in msg and "allowed keys: version, include, cache_dir, datasets, suites" in msg
    assert "datasets.d.img_size" in msg and "image_size" in msg


def test_bad_enum_lists_allowed_values(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "version: 1\ndatasets:\n  d: {adapter: synthetic, task: classify}\n"))
    assert "datasets.d.task" in msg and "'classification' or 'segmentation'" in msg and "classify" in msg


def test_split_ratios_must_sum_to_one(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\ndatasets:\n  d:\n    adapter: synthetic\n    split: {train: 0.5, val: 0.2, test: 0.2}\n")
    msg = error_of(path)
    assert f"{path}:5: datasets.d.split" in msg and "= 0.9" in msg and "sum to 1" in msg


def test_suite_with_missing_grouping_or_dataset(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        version: 1
        include: [embedded]
        suites:
          s:
            datasets: {synthetic_cls: [group, ghost], nosuch: [group]}
        """,
    )
    msg = error_of(path)
    assert "suites.s.datasets.synthetic_cls" in msg and "'ghost'" in msg
    assert "its groupings: group, site, age, group_x_site" in msg
    assert "unknown dataset 'nosuch'" in msg and "synthetic_cls, synthetic_seg, synthetic_seg3d" in msg


def test_recipe_keys_and_types_checked_against_train_recipe(tmp_path: Path) -> None:
    base = "version: 1\ninclude: [embedded]\nsuites:\n  s:\n    datasets: {synthetic_cls: [group]}\n"
    msg = error_of(write(tmp_path, base + "    recipe: {epoch: 3}\n"))
    assert "suites.s.recipe.epoch" in msg and "epochs" in msg and "batch_size" in msg
    msg = error_of(write(tmp_path, base + "    recipe: {epochs: many}\n"))
    assert "suites.s.recipe.epochs" in msg


def test_method_recipe_override_checked_at_load(tmp_path: Path) -> None:
    base = "version: 1\ninclude: [embedded]\nsuites:\n  s:\n    datasets: {synthetic_seg: [group]}\n"
    msg = error_of(write(tmp_path, base + "    method_params: {fairdro: {recipe: {batchsize: 8}}}\n"))
    assert "suites.s.method_params" in msg and "fairdro.recipe" in msg and "'batchsize'" in msg and "batch_size" in msg
    msg = error_of(write(tmp_path, base + "    method_params: {fairdro: {recipe: {lr: 0}}}\n"))
    assert "fairdro.recipe" in msg and "lr" in msg
    msg = error_of(write(tmp_path, base + "    method_params: {fairdro: {recipe: 8}}\n"))
    assert "fairdro.recipe must be a mapping" in msg
    path = write(tmp_path, base + "    method_params: {fairdro: {recipe: {batch_size: 8}, alpha: 0.5}}\n")
    assert load_catalogue(path).suites["s"].method_params == {"fairdro": {"recipe": {"batch_size": 8}, "alpha": 0.5}}


@pytest.mark.parametrize(
    ("grouping", "expected"),
    [
        ("{column: age, bins: [60], labels: [a, b, c]}", "1 cut point(s) make 2 bins but 3 label(s)"),
        ("{column: age, bins: [60, 40]}", "strictly increasing"),
        ("{column: sex, map: {m: male}, bins: [1]}", "not both"),
        ("{description: nothing}", "exactly one of `column` or `intersection`"),
        ("{intersection: [g, nope]}", "'nope' is not another grouping"),
    ],
)
def test_impossible_grouping_rules(tmp_path: Path, grouping: str, expected: str) -> None:
    path = write(tmp_path, f"version: 1\ndatasets:\n  d:\n    adapter: synthetic\n    groupings:\n      g: {grouping}\n")
    msg = error_of(path)
    assert "datasets.d.groupings.g" in msg and expected in msg


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "version: 1\ndatasets:\n  d: {adapter: [\n"))
    assert str(tmp_path / "datasets.yaml") in msg and "line" in msg and "invalid YAML" in msg


def test_default_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDFAIRX_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_catalogue().path == EMBEDDED_CATALOGUE
    local = write(tmp_path, "version: 1\ndatasets:\n  here: {adapter: synthetic}\n")
    assert load_catalogue().path == local and list(load_catalogue().datasets) == ["here"]
    other = write(tmp_path, "version: 1\ndatasets:\n  there: {adapter: synthetic}\n", name="other.yaml")
    monkeypatch.setenv("MEDFAIRX_CONFIG", str(other))
    assert list(load_catalogue().datasets) == ["there"]
    monkeypatch.setenv("MEDFAIRX_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_catalogue()


def test_local_definition_overrides_included_one(tmp_path: Path) -> None:
    text = "version: 1\ninclude: [embedded]\ndatasets:\n  synthetic_cls:\n    adapter: synthetic\n    description: mine\n"
    groupings = ("{group: {column: group}, site: {column: site}, age: {column: age, bins: [60]}, "
                 "age3: {column: age, bins: [40, 60]}, group_x_site: {intersection: [group, site]}}")
    path = write(tmp_path, text + f"    groupings: {groupings}\n")
    cat = load_catalogue(path)
    assert cat.datasets["synthetic_cls"].description == "mine" and cat.source_of("synthetic_cls") == path
    with pytest.raises(UnknownNameError, match="Did you mean: synthetic_cls"):
        cat.dataset("synthetic_cl")

"""The option-to-files table stays true to the template tree."""

import shutil
from pathlib import Path

import pytest

from hooks.bakery.layout import (
    OPTION_FILES,
    apply_layout,
    final_path,
    listed_paths,
    unwanted_paths,
    variant_moves,
    variant_target,
)
from testkit.template import TEMPLATE_ROOT, choice_options, defaults, supported_combinations

PROJECT_TEMPLATE = TEMPLATE_ROOT / "{{cookiecutter.project_slug | project_dir}}"
PACKAGE = "{package_name}"


def test_every_listed_path_exists_in_the_template() -> None:
    missing = [
        path
        for files_by_value in OPTION_FILES.values()
        for paths in files_by_value.values()
        for path in paths
        if not (
            PROJECT_TEMPLATE / path.format(package_name="{{cookiecutter.package_name}}")
        ).exists()
    ]
    assert missing == []


def test_every_option_and_value_in_the_table_is_a_real_choice() -> None:
    options = choice_options()
    for option, files_by_value in OPTION_FILES.items():
        assert option in options
        assert set(files_by_value) <= set(options[option])


def template_paths() -> list[str]:
    """Every file and directory of the project template, written as the table writes them."""
    return [
        str(path.relative_to(PROJECT_TEMPLATE)).replace("{{cookiecutter.package_name}}", PACKAGE)
        for path in PROJECT_TEMPLATE.rglob("*")
        if "__pycache__" not in path.parts
    ]


def test_every_variant_in_the_template_is_listed_under_its_value() -> None:
    """An unlisted `settings.django.py` would be left in every bake under its odd name."""
    listed = {
        (value, path)
        for files_by_value in OPTION_FILES.values()
        for value, paths in files_by_value.items()
        for path in paths
    }
    unlisted = [
        (value, path)
        for path in template_paths()
        for values in choice_options().values()
        for value in values
        if variant_target(path, value) is not None and (value, path) not in listed
    ]
    assert unlisted == []


def pairs() -> list[dict[str, str]]:
    """Each supported combination of the options that have variants, the others at defaults."""
    varied = [option for option in OPTION_FILES if option in {"framework", "database"}]
    unique = {tuple(c[o] for o in varied): c for c in supported_combinations()}
    return [{**defaults(), **dict(zip(varied, key, strict=True))} for key in unique]


def pair_id(answers: dict[str, str]) -> str:
    return f"{answers['framework']}-{answers['database']}"


@pytest.mark.parametrize("answers", pairs(), ids=pair_id)
def test_a_variant_only_replaces_files_that_the_chosen_values_remove(
    answers: dict[str, str],
) -> None:
    answers = {**answers, "package_name": PACKAGE}
    existing = set(template_paths())
    unwanted = set(unwanted_paths(answers))

    def removed(path: str) -> bool:
        return any(path == gone or path.startswith(gone + "/") for gone in unwanted)

    clashes = [
        (variant, target)
        for variant, target in variant_moves(answers)
        if target in existing and not removed(target)
    ]
    assert clashes == []


def template_file(path: str) -> Path:
    return PROJECT_TEMPLATE / path.format(package_name="{{cookiecutter.package_name}}")


@pytest.mark.parametrize("answers", pairs(), ids=pair_id)
def test_apply_layout_leaves_each_combination_its_own_files_under_their_real_names(
    answers: dict[str, str], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT_TEMPLATE, project)
    (project / "{{cookiecutter.package_name}}").rename(project / "pkg")
    answers = {**answers, "package_name": "pkg"}
    unwanted = {path.format(package_name="pkg") for path in unwanted_paths(answers)}
    ours = {
        path
        for path, chosen in listed_paths(answers)
        if chosen
        and not any(
            path.format(package_name="pkg") == gone
            or path.format(package_name="pkg").startswith(gone + "/")
            for gone in unwanted
        )
    }
    moves = dict(variant_moves(answers))

    apply_layout(project, answers)

    def exists(path: str) -> bool:
        return (project / path.format(package_name="pkg")).exists()

    kept = [final_path(path, answers) for path in ours]
    assert [path for path in sorted(kept) if not exists(path)] == []
    # A removed file's name may be taken by the chosen value's version of it.
    assert [path for path in sorted(unwanted - set(moves.values())) if exists(path)] == []
    for variant, target in moves.items():
        source = template_file(variant.replace("pkg/", "{package_name}/", 1))
        assert (project / target).read_text() == source.read_text(), variant
    markers = {f".{value}." for files_by_value in OPTION_FILES.values() for value in files_by_value}
    assert [p for p in project.rglob("*") if any(m in p.name for m in markers)] == []

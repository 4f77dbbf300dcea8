"""The option-to-files table stays true to the template tree."""

import shutil
from pathlib import Path

import pytest
from bakery.layout import OPTION_FILES, apply_layout, variant_target

from tests.template import TEMPLATE_ROOT, choice_options, defaults

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
        (option, value, path)
        for option, files_by_value in OPTION_FILES.items()
        for value, paths in files_by_value.items()
        for path in paths
    }
    unlisted = [
        (option, value, path)
        for path in template_paths()
        for option, values in choice_options().items()
        for value in values
        if variant_target(path, value) is not None and (option, value, path) not in listed
    ]
    assert unlisted == []


def test_a_variant_only_replaces_files_that_the_other_values_remove() -> None:
    existing = set(template_paths())
    clashes = [
        (option, value, target)
        for option, files_by_value in OPTION_FILES.items()
        for value, paths in files_by_value.items()
        for path in paths
        if (target := variant_target(path, value)) in existing
        and not all(
            target in files_by_value.get(other, [])
            for other in choice_options()[option]
            if other != value
        )
    ]
    assert clashes == []


def template_file(path: str) -> Path:
    return PROJECT_TEMPLATE / path.format(package_name="{{cookiecutter.package_name}}")


def final_path(path: str, value: str) -> str:
    return variant_target(path, value) or path


@pytest.mark.parametrize("framework", choice_options()["framework"])
def test_apply_layout_leaves_each_framework_its_own_files_under_their_real_names(
    framework: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT_TEMPLATE, project)
    (project / "{{cookiecutter.package_name}}").rename(project / "pkg")
    files_by_value = OPTION_FILES["framework"]
    ours = {final_path(path, framework) for path in files_by_value[framework]}
    theirs = {
        final_path(path, other)
        for other, paths in files_by_value.items()
        if other != framework
        for path in paths
    }

    apply_layout(project, {**defaults(), "framework": framework, "package_name": "pkg"})

    def exists(path: str) -> bool:
        return (project / path.format(package_name="pkg")).exists()

    assert [path for path in sorted(ours) if not exists(path)] == []
    assert [path for path in sorted(theirs - ours) if exists(path)] == []
    for path in files_by_value[framework]:
        if variant_target(path, framework) is not None:
            placed = project / final_path(path, framework).format(package_name="pkg")
            assert placed.read_text() == template_file(path).read_text(), path
    markers = [f".{value}." for value in files_by_value]
    assert [p for p in project.rglob("*") if any(m in p.name for m in markers)] == []

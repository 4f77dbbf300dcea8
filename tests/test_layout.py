"""The template tree's condition folders: what each answer brings, and nothing else."""

import shutil
from pathlib import Path

import pytest

from hooks.bakery.facts import conditions
from hooks.bakery.layout import LayoutError, apply_layout, condition_of, landing_path
from testkit.render import PROJECT_TEMPLATE, context_for
from testkit.template import choice_options, supported_combinations


def condition_folders() -> list[Path]:
    return [path for path in PROJECT_TEMPLATE.rglob("*") if condition_of(path) is not None]


def every_condition_value() -> dict[str, set[str]]:
    """Each name a condition folder may use, with every value it takes in some combination."""
    values: dict[str, set[str]] = {}
    for answers in supported_combinations():
        for name, value in conditions(context_for(answers)).items():
            values.setdefault(name, set()).add(value)
    return values


def test_every_condition_folder_names_a_real_answer_or_fact_and_its_values() -> None:
    known = every_condition_value()
    wrong = []
    for folder in condition_folders():
        name, values = condition_of(folder)
        if name not in known or not set(values) <= known[name]:
            wrong.append(folder.relative_to(PROJECT_TEMPLATE).as_posix())
    assert wrong == []


def test_every_multiple_choice_question_that_brings_files_has_a_folder_per_value() -> None:
    """A value with files of its own shows them in the tree; one without simply has no folder.

    Guards against typos: a folder `ci=gitab` would never be merged and its files never baked.
    """
    named = {condition_of(folder)[0] for folder in condition_folders()}
    assert named <= {*choice_options(), "secrets"}
    assert {"framework", "database", "exposure", "autoscaling", "ci", "secrets"} <= named


def test_no_template_file_lands_at_the_same_place_twice_in_any_combination() -> None:
    sources = [
        path.relative_to(PROJECT_TEMPLATE).as_posix()
        for path in PROJECT_TEMPLATE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    clashes = []
    for answers in supported_combinations():
        present = conditions(context_for(answers))
        landed: dict[str, str] = {}
        for source in sources:
            target = landing_path(source, present)
            if target is None:
                continue
            if target in landed:
                clashes.append((landed[target], source))
            landed[target] = source
    assert clashes == []


def layout(tmp_path: Path, files: dict[str, str], present: dict[str, str]) -> set[str]:
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    apply_layout(tmp_path, present)
    return {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}


def test_a_matching_folder_is_merged_into_its_parent_and_the_others_are_removed(
    tmp_path: Path,
) -> None:
    files = {
        "README.md": "common",
        "framework=fastapi/pkg/main.py": "fastapi",
        "framework=fastapi/database=none/pkg/store.py": "in memory",
        "framework=fastapi/database=postgresql,mongodb/pkg/migrate.py": "migrate",
        "framework=django/manage.py": "django",
        "pkg/exposure=ingress/ingress.yaml": "ingress",
    }
    present = {"framework": "fastapi", "database": "mongodb", "exposure": "none"}

    assert layout(tmp_path, files, present) == {"README.md", "pkg/main.py", "pkg/migrate.py"}
    assert (tmp_path / "pkg/main.py").read_text() == "fastapi"
    assert not list(tmp_path.rglob("*=*"))


def test_two_sources_for_one_path_are_refused_naming_both(tmp_path: Path) -> None:
    files = {"pkg/settings.py": "default", "framework=django/pkg/settings.py": "django"}

    with pytest.raises(LayoutError, match=r"pkg/settings.py comes from two places"):
        layout(tmp_path, files, {"framework": "django"})


def test_a_folder_naming_no_answer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="no answer or fact frameworks"):
        layout(tmp_path, {"frameworks=django/manage.py": ""}, {"framework": "django"})


@pytest.mark.parametrize("framework", choice_options()["framework"])
def test_the_tree_shows_what_each_framework_brings(framework: str, tmp_path: Path) -> None:
    """Everything under `framework=X/` is that framework's; the common tree holds no framework
    module of its own (no unmarked file means "the default framework")."""
    answers = next(a for a in supported_combinations() if a["framework"] == framework)
    project = tmp_path / "project"
    shutil.copytree(PROJECT_TEMPLATE, project)

    apply_layout(project, conditions(context_for(answers)))

    folder = PROJECT_TEMPLATE / f"framework={framework}"
    own = (path.relative_to(folder) for path in folder.rglob("*.py"))
    brought = [path for path in own if "=" not in path.as_posix()]
    assert brought
    assert [path for path in brought if not (project / path).is_file()] == []

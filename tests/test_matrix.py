"""Every combination of cookiecutter.json's choices: the supported ones render clean and bake as
they render, their hook's validator passing; the others are refused with their reason and leave
nothing behind. benchmarks/matrix_time.py times the same work.

The supported combinations are rendered in memory and each distinct file is checked once
(testkit.matrix). A real bake of each distinct Python file set's first combination (the hooks,
the generated code and the project's validator are Python) must match its in-memory rendering
byte for byte, its hook's validator passing. Every distinct manifest set is validated strictly,
with the project's own locked tools, by tests/test_manifests.py. The conftest prints the matrix's
size and time in the terminal summary.
"""

from collections.abc import Callable
from pathlib import Path

import pytest

from hooks.bakery.jinja import RefusedAnswer
from testkit.matrix import (
    COSTED,
    VALIDATED,
    Matrix,
    bake_differences,
    bake_in_process,
    file_problems,
    render_matrix,
)
from testkit.template import (
    answers_key,
    bake_in_subprocess,
    refusal,
    supported_combinations,
    unsupported_combinations,
)

# The bakes are split in this many tests so that xdist's workers share them.
BAKE_PARTS = 2


@pytest.fixture(scope="session")
def matrix() -> Matrix:
    return render_matrix(supported_combinations())


def test_every_supported_combination_renders_clean(
    matrix: Matrix, record_property: Callable[[str, object], None]
) -> None:
    """Leftovers, blank-line runs, empty folders, foreign mentions, yamllint, ruff check and
    ruff format --check, for every file of every combination."""
    problems = file_problems(matrix)

    record_property("matrix_supported", len(matrix.combinations))
    record_property("matrix_files", matrix.distinct_files)
    record_property("matrix_python_sets", len(matrix.python_sets))
    assert {key: found for key, found in problems.items() if found} == {}


@pytest.mark.parametrize("part", range(BAKE_PARTS))
def test_each_distinct_python_file_set_bakes_as_it_renders_and_passes_its_validator(
    matrix: Matrix,
    part: int,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    """A real bake (hooks included) of each Python file set's first combination: it wrote what
    the in-memory rendering holds, so the checks of the renderings hold for the bakes, and its
    hook ran the project's validator over the built overlays."""
    record_property("matrix_manifest_sets", len(matrix.manifest_sets))
    for number, keys in enumerate(matrix.python_sets):
        if number % BAKE_PARTS != part:
            continue
        project = bake_in_process(matrix.answers(keys[0]), tmp_path / str(number))
        output = capfd.readouterr().out

        assert VALIDATED.search(output), (keys[0], output)
        overlays = sorted(p.parent.name for p in project.glob("k8s/overlays/*/kustomization.yaml"))
        assert COSTED.findall(output) == overlays, (keys[0], output)
        assert bake_differences(project, matrix.rendered[keys[0]]) == [], keys[0]


# The unsupported combinations are refused in this many tests: one test each would spend more
# on pytest's own bookkeeping than on the refusals.
REFUSAL_PARTS = 2


@pytest.mark.parametrize("part", range(REFUSAL_PARTS))
def test_every_unsupported_combination_is_refused_with_its_reason_and_leaves_nothing(
    tmp_path: Path, part: int, record_property: Callable[[str, object], None]
) -> None:
    """Through cookiecutter's API, which the command line calls; the test below shows each
    distinct reason as the command line prints it."""
    mine = unsupported_combinations()[part::REFUSAL_PARTS]
    wrong = {}
    for number, answers in enumerate(mine):
        scratch = tmp_path / str(number)
        try:
            bake_in_process(answers, scratch)
        except RefusedAnswer as refused:
            left = list((scratch / "out").iterdir())
            if str(refused) != refusal(answers) or "supports" not in str(refused) or left:
                wrong[answers_key(answers)] = (str(refused), left)
        else:
            wrong[answers_key(answers)] = ("baked", [])

    record_property("matrix_refused", len(mine))
    assert wrong == {}


REFUSALS = list({refusal(answers): answers for answers in unsupported_combinations()}.values())


@pytest.mark.parametrize("answers", REFUSALS, ids=refusal)
def test_each_refusal_reason_is_one_error_line_of_the_command_line(
    tmp_path: Path, answers: dict[str, str]
) -> None:
    result = bake_in_subprocess(tmp_path, **answers)

    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error: " in line]
    assert errors == [f"error: {refusal(answers)}"]
    assert list(tmp_path.iterdir()) == []

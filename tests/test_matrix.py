"""Every combination of cookiecutter.json's choices: the supported ones bake clean, the others are
refused with their reason and leave nothing behind. benchmarks/matrix_time.py times the same work.
"""

from collections.abc import Callable
from pathlib import Path

import pytest

from testkit.matrix import check_combinations
from testkit.template import (
    answers_key,
    bake_in_subprocess,
    refusal,
    supported_combinations,
    unsupported_combinations,
)


def test_every_supported_combination_bakes_clean(baked: Callable[..., Path]) -> None:
    """Each bake also passed its own manifest validator: the post-generation hook runs it."""
    problems = check_combinations(supported_combinations(), lambda answers: baked(**answers))

    assert {key: found for key, found in problems.items() if found} == {}


@pytest.mark.parametrize("answers", unsupported_combinations(), ids=answers_key)
def test_every_unsupported_combination_is_refused_with_its_reason_and_leaves_nothing(
    tmp_path: Path, answers: dict[str, str]
) -> None:
    result = bake_in_subprocess(tmp_path, **answers)

    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error: " in line]
    assert errors == [f"error: {refusal(answers)}"]
    assert "supports" in errors[0]
    assert list(tmp_path.iterdir()) == []

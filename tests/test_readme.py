"""The template's README, followed literally on a fresh copy of this repository, works.

Its "Two commands" are the first thing a newcomer runs: the first must render the default project
with nothing but Python on the machine, the second is the command CI runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from testkit.render import render
from testkit.template import TEMPLATE_ROOT, choice_options, defaults

README = TEMPLATE_ROOT / "README.md"
# What a fresh machine passes on to a command besides its Python: where home is, and how it
# reaches the package index (proxies, certificates, pip's own settings).
NETWORK_VARIABLES = re.compile(
    r"(HOME|LANG|LC_ALL|SSL_CERT_\w+|REQUESTS_CA_BUNDLE|PIP_\w+|\w*_(?i:proxy))"
)
PROMPT = re.compile(r"\[\d+/\d+\]")
# Where a system Python keeps its standard library, which PEP 668 marks as externally managed.
IS_EXTERNALLY_MANAGED = (
    "import os, sys, sysconfig;"
    " print(sys.executable, os.path.isfile(os.path.join(sysconfig.get_path('stdlib'),"
    " 'EXTERNALLY-MANAGED')))"
)


def two_commands() -> list[str]:
    """The shell blocks of the README's "Two commands" section, in order."""
    sections = re.split(r"^## ", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    [section] = [text for text in sections if text.startswith("Two commands\n")]
    fences = [token for token in MarkdownIt("commonmark").parse(section) if token.type == "fence"]
    assert [fence.info for fence in fences] == ["sh", "sh"]
    return [fence.content.strip() for fence in fences]


def fresh_machine_python() -> tuple[str, bool]:
    """(interpreter, externally managed): the operating system's own Python when there is one.

    A stock Debian or Ubuntu Python refuses `pip install` outside a virtual environment
    (PEP 668); that is the case the README's first command must survive.
    """
    found = []
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and os.path.exists(candidate):
            probe = subprocess.run(
                [candidate, "-c", IS_EXTERNALLY_MANAGED],
                capture_output=True,
                text=True,
                check=True,
            )
            executable, managed = probe.stdout.split()
            found.append((executable, managed == "True"))
    assert found, "no python3 on this machine"
    return next((python for python in found if python[1]), found[0])


def copy_working_tree(destination: Path) -> None:
    """What a clone holds, as the working tree has it now (uncommitted changes included)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = TEMPLATE_ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def test_the_readmes_test_command_is_the_one_ci_runs() -> None:
    ci = (TEMPLATE_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    [command] = [line.removeprefix("exec ") for line in ci.splitlines() if line.startswith("exec ")]

    assert two_commands()[1] == command


def test_the_readme_installs_the_cookiecutter_the_tests_run() -> None:
    pyproject = tomllib.loads((TEMPLATE_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [pin] = [
        dep for dep in pyproject["dependency-groups"]["test"] if dep.startswith("cookiecutter")
    ]

    assert re.search(rf"\b{re.escape(pin)}\b", two_commands()[0])


def test_the_readmes_render_command_works_on_a_fresh_copy_with_only_python(
    tmp_path: Path,
) -> None:
    template = tmp_path / "template"
    copy_working_tree(template)
    python, _ = fresh_machine_python()
    # Nothing on PATH but the system's tools and that Python as `python3`: no venv, no pipx.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(python)
    environment = {
        name: value for name, value in os.environ.items() if NETWORK_VARIABLES.fullmatch(name)
    }
    environment["PATH"] = f"{bin_dir}{os.pathsep}{os.defpath}"

    result = subprocess.run(
        ["sh", "-c", two_commands()[0]],
        cwd=template,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, f"with {python}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    assert not PROMPT.search(result.stdout), result.stdout
    project = template / "orders-service"
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["name"] == "orders-service"
    assert (project / "orders_service" / "main.py").is_file()


# --- The generated project's README: its event worker section ---------------------------------

BROKER_NAMES = {"rabbitmq": "RabbitMQ", "kafka": "Kafka"}


def generated_readme(**choices: str) -> str:
    return render("README.md", {**defaults(), "database": "postgresql", **choices})


def test_every_broker_answer_has_a_name_the_readme_uses() -> None:
    assert set(choice_options()["worker"]) == {"none", *BROKER_NAMES}


@pytest.mark.parametrize("worker", sorted(BROKER_NAMES))
def test_the_generated_readme_explains_the_worker_of_its_broker_only(worker: str) -> None:
    readme = generated_readme(worker=worker, ci="github")
    section = readme.split("\n## Event worker\n", 1)[1].split("\n## ", 1)[0]
    for topic in (
        "outbox",
        "SKIP LOCKED",
        "at least once",
        "dead-letter",
        "SIGTERM",
        "make worker",
    ):
        assert topic in section, topic
    assert "CONSUMER_GRACEFUL_TIMEOUT" in section
    other = next(name for key, name in BROKER_NAMES.items() if key != worker)
    assert other not in readme, f"speaks of {other}"
    if worker == "kafka":
        # CI's broker is Apache Kafka itself, whatever a developer runs locally.
        assert "Apache Kafka itself" in section
    assert "## Event worker" not in generated_readme(worker="none")

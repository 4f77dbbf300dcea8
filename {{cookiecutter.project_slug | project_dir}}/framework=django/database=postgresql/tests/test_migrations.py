import subprocess

import psycopg

from {{ cookiecutter.package_name }}.core.management.commands.migrate_locked import LOCK_ID
from tests.support import (
    MANAGE,
    PROJECT_ROOT,
    UNREACHABLE_DATABASE_URL,
    app_env,
    json_lines,
    run_manage,
)


def applied_migrations(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        if conn.execute("SELECT to_regclass('django_migrations')").fetchone() == (None,):
            return set()
        rows = conn.execute("SELECT app || '.' || name FROM django_migrations").fetchall()
    return {row[0] for row in rows}


def applied_by(output: str) -> list[str]:
    (event,) = [event for event in json_lines(output) if event["event"] == "migrations applied"]
    return event["applied"]


def test_migrate_locked_applies_every_migration(empty_database: str) -> None:
    result = run_manage("migrate_locked", env=app_env(empty_database))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "items.0001_initial" in applied_by(result.stdout)
    assert "items.0001_initial" in applied_migrations(empty_database)


def test_concurrent_runs_all_succeed_and_only_one_migrates(empty_database: str) -> None:
    processes = [
        subprocess.Popen(  # noqa: S603 - fixed command line
            [*MANAGE, "migrate_locked"],
            cwd=PROJECT_ROOT,
            env=app_env(empty_database),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    applied = sorted((applied_by(output) for output in outputs), key=len)
    assert applied[:2] == [[], []], outputs
    assert "items.0001_initial" in applied[2]


def test_gives_up_with_one_line_when_another_pod_holds_the_lock(empty_database: str) -> None:
    with psycopg.connect(empty_database, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [LOCK_ID])
        result = run_manage(
            "migrate_locked", env=app_env(empty_database, MIGRATION_LOCK_TIMEOUT="1")
        )

    assert result.returncode == 1
    (failure,) = [e for e in json_lines(result.stdout) if e["event"] == "migration failed"]
    assert failure["reason"] == f"LockTimeoutError: migration lock {LOCK_ID} not acquired within 1s"
    assert applied_migrations(empty_database) == set()


def test_fails_with_one_clear_line_when_the_database_is_down() -> None:
    result = run_manage("migrate_locked", env=app_env(UNREACHABLE_DATABASE_URL))

    assert result.returncode == 1
    (failure,) = [e for e in json_lines(result.stdout) if e["event"] == "migration failed"]
    assert failure["reason"].startswith("OperationalError: ")
    assert failure["level"] == "error"


def test_models_and_migrations_agree(migrated_database: str) -> None:
    result = run_manage("makemigrations", "--check", "--dry-run", env=app_env(migrated_database))

    assert result.returncode == 0, result.stdout + result.stderr

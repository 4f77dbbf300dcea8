import asyncio
import subprocess

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.support import (
    MIGRATE_COMMAND,
    UNREACHABLE_DATABASE_URL,
    asyncpg_dsn,
    migrate_env,
    run_migrate,
)

# The newest revision, however many migrations the project has grown.
HEADS = ScriptDirectory.from_config(Config("alembic.ini")).get_heads()


async def fetch_state(database_url: str) -> tuple[list[str], bool]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        has_version_table = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        versions = []
        if has_version_table:
            rows = await conn.fetch("SELECT version_num FROM alembic_version")
            versions = [row["version_num"] for row in rows]
        has_items = await conn.fetchval("SELECT to_regclass('items') IS NOT NULL")
    finally:
        await conn.close()
    return versions, has_items


def test_migrate_command_upgrades_to_head(empty_database: str) -> None:
    result = run_migrate(empty_database)

    assert result.returncode == 0, result.stdout + result.stderr
    assert asyncio.run(fetch_state(empty_database)) == (HEADS, True)


def test_downgrade_to_base_and_back(empty_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)
    config = Config("alembic.ini")

    command.upgrade(config, "head")
    command.downgrade(config, "base")
    assert asyncio.run(fetch_state(empty_database)) == ([], False)

    command.upgrade(config, "head")
    assert asyncio.run(fetch_state(empty_database)) == (HEADS, True)


def test_concurrent_migrate_commands_all_succeed(empty_database: str) -> None:
    processes = [
        subprocess.Popen(  # noqa: S603 - fixed command line
            MIGRATE_COMMAND,
            env=migrate_env(empty_database),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert asyncio.run(fetch_state(empty_database)) == (HEADS, True)
    upgrades = sum(output.count("Running upgrade  -> 0001") for output in outputs)
    assert upgrades == 1, outputs


def test_migrate_fails_with_one_clear_line_when_the_database_is_down() -> None:
    result = run_migrate(UNREACHABLE_DATABASE_URL)

    assert result.returncode == 1
    assert "migration failed" in result.stdout

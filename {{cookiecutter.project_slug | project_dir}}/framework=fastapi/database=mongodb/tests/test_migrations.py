import subprocess
from datetime import UTC, datetime

import pytest
from pymongo import MongoClient
from pymongo.errors import WriteError

from {{ cookiecutter.package_name }}.documents import COLLECTION, ITEM_VALIDATOR
from tests.support import (
    MIGRATE_COMMAND,
    UNREACHABLE_MONGODB_URL,
    migrate_env,
    run_migrate,
)

# The server's error code for a document its validator rejects.
DOCUMENT_VALIDATION_FAILURE = 121


def collection_state(server_url: str, database: str) -> tuple[dict, set[str]]:
    with MongoClient(server_url) as client:
        (info,) = client[database].list_collections(filter={"name": COLLECTION})
        indexes = {index["name"] for index in client[database][COLLECTION].list_indexes()}
    return info["options"], indexes


def test_migrate_creates_the_collection_with_its_validator_and_index(
    mongodb_url: str, mongodb_empty_database: str
) -> None:
    result = run_migrate(mongodb_url, mongodb_empty_database)

    assert result.returncode == 0, result.stdout + result.stderr
    options, indexes = collection_state(mongodb_url, mongodb_empty_database)
    assert options["validator"] == ITEM_VALIDATOR
    assert options["validationLevel"] == "strict"
    assert indexes == {"_id_", "created_at_id"}


def test_running_it_again_changes_nothing(mongodb_url: str, mongodb_empty_database: str) -> None:
    first = run_migrate(mongodb_url, mongodb_empty_database)
    state = collection_state(mongodb_url, mongodb_empty_database)
    again = run_migrate(mongodb_url, mongodb_empty_database)

    assert [first.returncode, again.returncode] == [0, 0], first.stdout + again.stdout
    assert collection_state(mongodb_url, mongodb_empty_database) == state


def test_concurrent_migrate_commands_all_succeed(
    mongodb_url: str, mongodb_empty_database: str
) -> None:
    processes = [
        subprocess.Popen(  # noqa: S603 - fixed command line
            MIGRATE_COMMAND,
            env=migrate_env(mongodb_url, mongodb_empty_database),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert all('"event": "collection ready"' in output for output in outputs), outputs
    assert collection_state(mongodb_url, mongodb_empty_database)[1] == {"_id_", "created_at_id"}


@pytest.mark.parametrize(
    "document",
    [
        {"name": "", "description": None},
        {"name": "x" * 201, "description": None},
        {"name": "Widget", "description": None, "colour": "blue"},
        {"name": "Widget"},
    ],
    ids=["empty-name", "long-name", "unknown-field", "missing-description"],
)
def test_the_database_rejects_documents_the_api_would_not_write(
    mongodb_url: str, mongodb_database: str, document: dict
) -> None:
    with MongoClient(mongodb_url, tz_aware=True) as client:
        items = client[mongodb_database][COLLECTION]
        with pytest.raises(WriteError) as rejected:
            items.insert_one({**document, "created_at": datetime.now(UTC)})

    assert rejected.value.code == DOCUMENT_VALIDATION_FAILURE


def test_migrate_fails_with_one_clear_line_when_the_database_is_down() -> None:
    result = run_migrate(UNREACHABLE_MONGODB_URL, "none", MONGODB_TIMEOUT="0.5")

    assert result.returncode == 1
    assert "migration failed" in result.stdout
    assert "ServerSelectionTimeoutError" in result.stdout

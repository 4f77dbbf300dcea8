"""Set up the items collection, its validator and its index: the initContainer's command.

Every replica's initContainer runs this module, so each step is idempotent and safe to run
concurrently, without a lock: creating the collection tolerates its existence (another pod may
have just created it), `collMod` sets the same validator again, and `createIndexes` leaves an
identical index as it is. Changing an existing index's keys needs a new index name. Failure is
one log line and exit status 1.
"""

import asyncio
import sys
from typing import Any

import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from {{ cookiecutter.package_name }}.core.db import create_client
from {{ cookiecutter.package_name }}.core.logging_config import configure_logging
from {{ cookiecutter.package_name }}.core.settings import Settings, get_settings
from {{ cookiecutter.package_name }}.documents import (
    COLLECTION,
    ITEM_INDEXES,
    ITEM_VALIDATOR,
)

logger = structlog.get_logger(__name__)

# The server's error code for a collection that exists with other options (older servers
# answer it for an existing collection with the same options too).
NAMESPACE_EXISTS = 48


async def create_collection(database: AsyncDatabase[dict[str, Any]]) -> None:
    """Create the collection with its validator, unless it exists."""
    try:
        await database.create_collection(COLLECTION, check_exists=False, validator=ITEM_VALIDATOR)
    except OperationFailure as exc:
        if exc.code != NAMESPACE_EXISTS:
            raise


async def migrate(settings: Settings) -> None:
    client = create_client(settings)
    try:
        database = client[settings.mongodb_database]
        await create_collection(database)
        # An existing collection gets the current validator too. Documents already stored are
        # checked again when they are next updated.
        await database.command(
            "collMod",
            COLLECTION,
            validator=ITEM_VALIDATOR,
            validationLevel="strict",
            validationAction="error",
        )
        indexes = await database[COLLECTION].create_indexes(ITEM_INDEXES)
    finally:
        await client.close()
    logger.info("collection ready", collection=COLLECTION, indexes=indexes)


def main() -> int:
    settings = get_settings()
    configure_logging(settings)
    try:
        asyncio.run(migrate(settings))
    except Exception as exc:  # noqa: BLE001 - one clear line for the pod's log, then a non-zero exit
        logger.error("migration failed", reason=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

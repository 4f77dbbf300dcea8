"""The MongoDB client and the per-request collection dependency."""

from typing import Annotated, Any

from fastapi import Depends, Request
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.documents import COLLECTION

Document = dict[str, Any]


def create_client(settings: Settings) -> AsyncMongoClient[Document]:
    # The client connects in the background on first use: creating it never blocks or fails.
    return AsyncMongoClient(
        settings.mongodb_url,
        appname=settings.app_name,
        # Dates come back as aware UTC datetimes, as they were written.
        tz_aware=True,
        maxPoolSize=settings.mongodb_max_pool_size,
        # One limit for each operation, waiting for a server included (the driver's timeoutMS).
        timeoutMS=round(settings.mongodb_timeout * 1000),
    )


def get_items(request: Request) -> AsyncCollection[Document]:
    return request.app.state.database[COLLECTION]


Items = Annotated[AsyncCollection[Document], Depends(get_items)]

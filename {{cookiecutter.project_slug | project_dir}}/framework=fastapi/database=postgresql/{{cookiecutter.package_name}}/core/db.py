"""The SQLAlchemy engine and the per-request session dependency."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from {{ cookiecutter.package_name }}.core.settings import Settings


class Base(DeclarativeBase):
    pass


{% if cookiecutter.worker != "none" -%}
def create_engine(settings: Settings, *, pre_ping: bool = True) -> AsyncEngine:
{%- else -%}
def create_engine(settings: Settings) -> AsyncEngine:
{%- endif %}
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        # Fail fast rather than queue forever when all connections are busy or the database is down.
        pool_timeout=settings.database_pool_timeout,
{%- if cookiecutter.worker != "none" %}
        pool_pre_ping=pre_ping,
{%- else %}
        pool_pre_ping=True,
{%- endif %}
        connect_args={
            "timeout": settings.database_connect_timeout,
            "server_settings": {
                "statement_timeout": str(settings.database_statement_timeout_ms),
                "application_name": settings.app_name,
            },
        },
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


# Closed as the route returns, not after the response is sent: its pooled connection goes back
# to the next request instead of waiting out serialization and a slow client.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]

"""The Redis the channels' tests run against: the one REDIS_URL names, as for the app."""

import os

import pytest
from redis import Redis
from redis.exceptions import RedisError

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Port 1 on loopback refuses connections: a Redis that is down.
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"


def require_redis() -> str:
    """REDIS_URL, once it answers; otherwise the run fails and says how to start one."""
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at REDIS_URL={REDIS_URL!r} ({exc}): start one with "
            "`docker compose up -d redis`, or point REDIS_URL at yours",
            pytrace=False,
        )
    finally:
        client.close()
    return REDIS_URL

"""The worker's Redis client: PUBLISH and PING for the channels, and the hub's subscription."""

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from {{ cookiecutter.package_name }}.core.settings import Settings

# Commands in flight at once per worker, the hub's subscription included; more wait for a free
# connection (within REDIS_TIMEOUT) rather than open thousands of connections under a burst.
POOL_SIZE = 32


def create_redis(settings: Settings) -> Redis:
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=POOL_SIZE,
        timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        socket_timeout=settings.redis_timeout,
        # One immediate retry, on a new connection: a pooled one that Redis dropped (a restart,
        # its idle timeout) is replaced without failing the command; an outage still fails
        # within REDIS_TIMEOUT instead of after redis-py's default backoff of several seconds.
        retry=Retry(NoBackoff(), retries=1),
    )
    # The client owns the pool: closing it closes every connection.
    return Redis.from_pool(pool)

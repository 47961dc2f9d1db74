"""Redis clients for the store and presence: pools that wait in a burst, reads retried once."""

from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from kpk_io.store.base import StoreUnavailable

# Short enough that a commit's attempts end well within a client's request timeout (10 s).
TIMEOUT = 2.0
MAX_CONNECTIONS = 256  # per client: a burst of joins waits less (redis-py wakes every waiter)
# How long a command waits for a free pooled connection: only when all MAX_CONNECTIONS are
# busy, which a burst does (1,000 joins to one room at once) while the event loop is busy
# with the burst itself; with TIMEOUT here, joins of that burst were refused `unavailable`.
# A stalled Redis still fails each command after TIMEOUT on its own connection.
POOL_WAIT = 10.0


def blocking_client(url: str, **options: Any) -> aioredis.Redis:
    """A client whose pool, when all its connections are busy, waits (up to POOL_WAIT) for
    one: redis-py's default pool fails at once ("Too many connections", past 100), and a
    burst of joins or commits was answered `unavailable`."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT, **options
    )
    client = aioredis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # aclose() closes the pool too
    return client


async def read_twice(read: Callable[[], Awaitable[list[Any]]]) -> list[Any]:
    """Run a read, once more if the connection was lost (a pooled connection from before a
    Redis restart fails once); reads are idempotent, unlike commits."""
    try:
        return await read()
    except (RedisConnectionError, RedisTimeoutError):
        pass
    except RedisError as exc:
        raise StoreUnavailable(str(exc)) from exc
    try:
        return await read()
    except RedisError as exc:
        raise StoreUnavailable(str(exc)) from exc

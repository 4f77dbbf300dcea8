"""WebSocket clients of a rendered service's channels: many at once, in one asyncio loop.

The clients are those the generated README describes: each joins one channel, waits for the
`subscribed` frame, then records every message frame with its arrival time, and the close code
and reason the server sent. `Follower` also reconnects by the README's rule (`reconnect_delay`).
Loopback only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

T = TypeVar("T")

# The reconnect rule: a random delay in [0, min(CAP, BASE * 2**attempt)] ("full jitter"), the
# attempt count starting again once a connection has lasted STABLE_AFTER seconds.
RECONNECT_BASE_SECONDS = 0.5
RECONNECT_CAP_SECONDS = 30.0
STABLE_AFTER_SECONDS = 30.0
# Closes that say the client's own frames or channel are wrong: reconnecting would repeat them.
NO_RECONNECT_CODES = frozenset({1003, 1007, 1008, 1009})
ABNORMAL_CLOSURE = 1006
# The default handshake budget of the library is 10 s; a crowd connecting at once on two
# cores needs more.
OPEN_TIMEOUT = 60


def reconnect_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before reconnect attempt `attempt` (0 for the first after a close)."""
    # The cap applies from attempt 6 on; bounding the exponent keeps the number small.
    ceiling = min(RECONNECT_CAP_SECONDS, RECONNECT_BASE_SECONDS * 2 ** min(attempt, 16))
    return (rng or random).uniform(0, ceiling)


def should_reconnect(code: int | None) -> bool:
    return code not in NO_RECONNECT_CODES


@dataclass
class Backoff:
    """The attempt count of one client across its reconnects."""

    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def delay(self, connected_for: float | None) -> float:
        """The wait before the next try; `connected_for` is None when the last try failed."""
        if connected_for is not None and connected_for >= STABLE_AFTER_SECONDS:
            self.attempt = 0
        delay = reconnect_delay(self.attempt, self.rng)
        self.attempt += 1
        return delay


def channel_url(port: int, channel: str) -> str:
    return f"ws://127.0.0.1:{port}/api/v1/channels/{channel}/ws"


@dataclass
class Received:
    frame: dict[str, Any]
    at: float  # time.monotonic() on arrival

    @property
    def id(self) -> str:
        return str(self.frame["id"])

    @property
    def data(self) -> Any:
        return self.frame["data"]


@dataclass
class Subscriber:
    """One connection to one channel, from the `subscribed` frame to the close."""

    url: str
    connection: ClientConnection
    connected_at: float
    messages: list[Received] = field(default_factory=list)
    other_frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    closed_at: float | None = None
    # What ended the transport when it was not a clean close: a reset shows up here.
    connection_error: BaseException | None = None
    reader: asyncio.Task[None] | None = None

    @property
    def local_port(self) -> int:
        return int(self.connection.local_address[1])

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def reset(self) -> bool:
        """The connection ended without a closing handshake (TCP reset or abrupt close)."""
        return self.close_code == ABNORMAL_CLOSURE or isinstance(
            self.connection_error, ConnectionResetError | BrokenPipeError
        )

    def start_reading(self) -> None:
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in self.connection:
                frame = json.loads(text)
                if frame.get("type") == "message":
                    self.messages.append(Received(frame, time.monotonic()))
                else:
                    self.other_frames.append(frame)
        await self.connection.wait_closed()
        self.closed_at = time.monotonic()
        self.close_code = self.connection.close_code
        self.close_reason = self.connection.close_reason
        self.connection_error = self.connection.connection_exc

    async def publish(self, data: Any) -> None:
        await self.connection.send(json.dumps({"type": "publish", "data": data}))

    def pause_reading(self) -> None:
        """Stop reading the socket: the server's writes to it back up, as a stalled client's do."""
        self.connection.transport.pause_reading()

    def resume_reading(self) -> None:
        self.connection.transport.resume_reading()


async def subscribe(url: str, *, receive_buffer: int | None = None, **options: Any) -> Subscriber:
    """Connect, wait for `subscribed`, then read in the background.

    `receive_buffer` sets SO_RCVBUF before connecting, so that a client that stops reading
    fills its TCP window after a few kilobytes.
    """
    options = {"open_timeout": OPEN_TIMEOUT, "compression": None, **options}
    if receive_buffer is not None:
        parts = urlsplit(url)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        options["sock"] = sock
    connection = await connect(url, **options)
    try:
        first = json.loads(await asyncio.wait_for(connection.recv(), OPEN_TIMEOUT))
    except BaseException:
        await connection.close()
        raise
    channel = urlsplit(url).path.split("/")[-2]
    if first != {"type": "subscribed", "channel": channel}:
        await connection.close()
        raise AssertionError(f"expected the subscribed frame of {channel!r} first, got {first!r}")
    subscriber = Subscriber(url, connection, time.monotonic())
    subscriber.start_reading()
    return subscriber


async def subscribe_many(
    urls: list[str], count: int, concurrency: int = 50, **options: Any
) -> list[Subscriber]:
    """`count` subscribers, client i on urls[i % len(urls)], at most `concurrency` handshakes
    at a time (a crowd reconnecting at once is the server's problem, not this helper's)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(number: int) -> Subscriber:
        async with gate:
            return await subscribe(urls[number % len(urls)], **options)

    results = await asyncio.gather(*(one(n) for n in range(count)), return_exceptions=True)
    failures = [result for result in results if isinstance(result, BaseException)]
    subscribers = [result for result in results if isinstance(result, Subscriber)]
    if failures:
        await close_all(subscribers)
        raise AssertionError(f"{len(failures)} of {count} clients failed to join: {failures[:3]}")
    return subscribers


async def close_all(subscribers: Iterable[Subscriber]) -> None:
    await asyncio.gather(
        *(subscriber.connection.close() for subscriber in subscribers), return_exceptions=True
    )


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until `condition()` holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@dataclass
class Follower:
    """A client that stays in its channel: on a close it reconnects by the README's rule."""

    url: str
    backoff: Backoff = field(default_factory=Backoff)
    connections: list[Subscriber] = field(default_factory=list)
    # (close code, seconds waited before the next try) per close or failed handshake.
    reconnects: list[tuple[int | None, float]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def current(self) -> Subscriber | None:
        if self.connections and not self.connections[-1].closed:
            return self.connections[-1]
        return None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await close_all(connection for connection in self.connections if not connection.closed)

    async def _run(self) -> None:
        while True:
            try:
                subscriber = await subscribe(self.url)
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, AssertionError):
                code, connected_for = None, None
            else:
                self.connections.append(subscriber)
                assert subscriber.reader is not None
                await subscriber.reader
                code = subscriber.close_code
                connected_for = (subscriber.closed_at or 0) - subscriber.connected_at
                if not should_reconnect(code):
                    return
            delay = self.backoff.delay(connected_for)
            self.reconnects.append((code, delay))
            await asyncio.sleep(delay)


async def follow_many(url: str, count: int) -> list[Follower]:
    followers = [Follower(url) for _ in range(count)]
    for follower in followers:
        follower.start()
    return followers


async def stop_following(followers: Iterable[Follower]) -> None:
    await asyncio.gather(*(follower.stop() for follower in followers))


class LoopThread:
    """An asyncio loop on a thread of its own, so a synchronous test can drive clients while
    it sends signals and HTTP requests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, function: Callable[[], T]) -> T:
        """A plain function on the loop's thread (the clients' state is the loop's)."""

        async def call() -> T:
            return function()

        return self.run(call())

    def stop(self) -> None:
        async def cancel_everything() -> None:
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_everything(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def tcp_rows() -> Iterator[tuple[int, int, str, int, int]]:
    """(local port, remote port, state, bytes in the send queue, inode) of each TCP socket."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for row in Path(table).read_text().splitlines()[1:]:
                fields = row.split()
                local, remote = (int(end.rsplit(":", 1)[1], 16) for end in fields[1:3])
                send_queue = int(fields[4].split(":")[0], 16)
                yield local, remote, fields[3], send_queue, int(fields[9])


ESTABLISHED = "01"


def connection_owners(pids: Iterable[int], port: int) -> dict[int, int]:
    """Client port -> PID of the server process holding the accepted connection on `port`.

    From /proc: the inodes of each process's sockets, and the kernel's TCP table, which lists
    the server's end of each loopback connection with `port` as its local port.
    """
    inodes: dict[int, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = fd.readlink().name
                if target.startswith("socket:["):
                    inodes[int(target[8:-1])] = pid
    return {
        remote: inodes[inode]
        for local, remote, state, _, inode in tcp_rows()
        if local == port and state == ESTABLISHED and inode in inodes
    }


def unsent_bytes(port: int, client_port: int) -> int:
    """What the kernel holds unacknowledged in the server's send queue towards one client."""
    for local, remote, state, send_queue, _ in tcp_rows():
        if (local, remote, state) == (port, client_port, ESTABLISHED):
            return send_queue
    raise AssertionError(f"no connection from client port {client_port} to {port}")

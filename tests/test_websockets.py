"""WebSocket channels (websockets=yes) of rendered services, on the real Redis.

The bake `framework=fastapi database=none websockets=yes` runs as its container does (the
Dockerfile's CMD with gunicorn.conf.py), on the host, with REDIS_URL pointing at the shared
Redis or at a TcpProxy in front of it the test controls. The clients (testkit/wsclients.py) are
those the generated README describes; channel names are unique per test. Everything is
loopback, bounded in clients and messages, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import json
import random
import re
import resource
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import InvalidStatus

from testkit import wsclients
from testkit.services import REDIS_URL, Service, TcpProxy, pod_environment
from testkit.wsclients import (
    NO_RECONNECT_CODES,
    RECONNECT_BASE_SECONDS,
    RECONNECT_CAP_SECONDS,
    STABLE_AFTER_SECONDS,
    Backoff,
    LoopThread,
    Subscriber,
    channel_url,
    connection_owners,
    follow_many,
    stop_following,
    subscribe,
    subscribe_many,
    wait_for,
)

pytestmark = pytest.mark.websockets

ANSWERS = {"framework": "fastapi", "database": "none", "websockets": "yes"}
CHANNELS = "/api/v1/channels"
MESSAGE_ID = re.compile(r"[0-9a-f]{32}")
# The manifests' budget: terminationGracePeriodSeconds 30 minus the 5 s preStop sleep.
SHUTDOWN_BUDGET_SECONDS = 25
# SHUTDOWN_DRAIN_SECONDS' default: WebSockets keep being served that long after SIGTERM.
DRAIN_SECONDS = 5
SHUTDOWN_CLIENTS = 1000
# Client sockets here, and the two workers' ends of them in the services this process starts.
OPEN_FILES = 4 * SHUTDOWN_CLIENTS


@pytest.fixture(scope="module")
def channels_project(installed_copy: Callable[..., tuple[Path, Path]]) -> tuple[Path, Path]:
    return installed_copy(**ANSWERS)


@pytest.fixture(scope="module", autouse=True)
def open_files() -> Iterator[None]:
    """Room for a thousand clients in this process and their server ends in its children."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < OPEN_FILES:
        pytest.fail(f"ulimit -Hn is {hard}; the shutdown test needs {OPEN_FILES}", pytrace=False)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, OPEN_FILES), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def clients() -> Iterator[LoopThread]:
    """The loop the test's WebSocket clients live in."""
    loop = LoopThread()
    yield loop
    loop.stop()


@pytest.fixture
def start(
    channels_project: tuple[Path, Path], tmp_path: Path, clients: LoopThread
) -> Iterator[Callable[..., Service]]:
    """Starts the service as its container does: two workers, the shared Redis, unless told.

    It takes `clients` so that the services stop first, while the clients still answer the
    closing handshakes."""
    project, venv = channels_project
    started: list[Service] = []

    def start_service(**env: str) -> Service:
        settings = {**pod_environment("fastapi"), "REDIS_URL": REDIS_URL, "WEB_CONCURRENCY": "2"}
        # Short, so that stopping at the end of a test is quick; the shutdown test sets its own.
        settings["SHUTDOWN_DRAIN_SECONDS"] = "1"
        log = tmp_path / f"service-{len(started)}.log"
        service = Service(project, venv, {**settings, **env}, log)
        started.append(service)
        return service.start()

    yield start_service
    with concurrent.futures.ThreadPoolExecutor() as pool:
        list(pool.map(Service.stop, started))


def unique_channel() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


def post(service: Service, channel: str, data: Any) -> tuple[int, dict[str, Any]]:
    status, body = service.request(
        "POST",
        f"{CHANNELS}/{channel}/messages",
        json.dumps({"data": data}).encode(),
        {"Content-Type": "application/json"},
    )
    return status, json.loads(body)


def ready(service: Service) -> tuple[int, dict[str, Any]]:
    status, _, body = service.get("/ready")
    return status, json.loads(body)


def metric(service: Service, name: str, **labels: str) -> float:
    """A sample from the master's /metrics (every worker's added up); 0 until it is exported."""
    selector = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    wanted = f"{name}{{{selector}}}" if labels else name
    conn = http.client.HTTPConnection("127.0.0.1", service.metrics_port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in body.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == wanted:
            return float(value)
    return 0.0


def workers_holding(service: Service, subscribers: list[Subscriber]) -> Counter[int]:
    """How many of the subscribers each worker process of the service holds."""
    owners = connection_owners(service.worker_pids(), service.port)
    return Counter(owners[subscriber.local_port] for subscriber in subscribers)


def test_messages_reach_every_subscriber_on_both_instances_in_order_exactly_once(
    start: Callable[..., Service], clients: LoopThread
) -> None:
    first, second = start(), start()
    channel = unique_channel()
    urls = [channel_url(first.port, channel), channel_url(second.port, channel)]
    # One handshake at a time (a worker that wakes to a burst accepts all of it), in rounds until
    # every worker of both instances holds some: the kernel picks the accepting worker, and on a
    # busy machine it can favour one for a while.
    subscribers: list[Subscriber] = []
    for _ in range(10):
        subscribers += clients.run(subscribe_many(urls, count=20, concurrency=1))
        on_first, on_second = subscribers[0::2], subscribers[1::2]
        spread = ((first, on_first), (second, on_second))
        if all(set(workers_holding(s, held)) == s.worker_pids() for s, held in spread):
            break
    # Clients are spread over both instances and every worker of each.
    for service, held in spread:
        holding = workers_holding(service, held)
        assert set(holding) == service.worker_pids(), holding
        assert sum(holding.values()) == len(held)

    per_source = 25
    http_ids: list[str] = []

    async def publish_from_both_instances_over_http_and_websockets() -> None:
        async def over_http(service: Service, source: str) -> None:
            for seq in range(per_source):
                data = {"source": source, "seq": seq}
                status, body = await asyncio.to_thread(post, service, channel, data)
                assert (status, body["channel"]) == (202, channel), body
                assert MESSAGE_ID.fullmatch(body["id"]), body
                http_ids.append(body["id"])

        async def over_websocket(subscriber: Subscriber, source: str) -> None:
            for seq in range(per_source):
                await subscriber.publish({"source": source, "seq": seq})

        await asyncio.gather(
            over_http(first, "http-first"),
            over_http(second, "http-second"),
            over_websocket(on_first[0], "ws-first"),
            over_websocket(on_second[0], "ws-second"),
        )

    clients.run(publish_from_both_instances_over_http_and_websockets())
    total = 4 * per_source
    clients.run(
        wait_for(
            lambda: all(len(subscriber.messages) >= total for subscriber in subscribers),
            30,
            f"{total} messages at each of {len(subscribers)} subscribers",
        )
    )
    time.sleep(0.5)  # room for a duplicate to show up

    order = clients.call(lambda: [message.id for message in subscribers[0].messages])
    assert len(order) == total
    assert len(set(order)) == total
    assert all(MESSAGE_ID.fullmatch(message_id) for message_id in order)
    assert set(http_ids) <= set(order)
    for subscriber in subscribers:
        received = clients.call(lambda s=subscriber: list(s.messages))
        # Everyone sees the same sequence: each message once, in the order Redis received them.
        assert [message.id for message in received] == order
        assert {message.frame["channel"] for message in received} == {channel}
        for source in ("http-first", "http-second", "ws-first", "ws-second"):
            sequence = [m.data["seq"] for m in received if m.data["source"] == source]
            assert sequence == list(range(per_source)), (source, sequence)
        assert not subscriber.closed


def test_a_client_that_stops_reading_is_closed_with_4008_and_the_others_get_everything(
    start: Callable[..., Service], clients: LoopThread
) -> None:
    queue_size = 16
    service = start(WEB_CONCURRENCY="1", WS_SEND_QUEUE_SIZE=str(queue_size))
    channel = unique_channel()
    url = channel_url(service.port, channel)
    others = clients.run(subscribe_many([url], count=10))
    # A small receive window: the stalled client's TCP window closes after a few kilobytes.
    stalled = clients.run(subscribe(url, receive_buffer=4096))
    clients.call(stalled.pause_reading)
    published = 0

    def publish(count: int) -> None:
        nonlocal published
        for _ in range(count):
            status, _ = post(service, channel, {"seq": published, "padding": "x" * 16_384})
            assert status == 202
            published += 1
        # Every reader has it: the server has handed each message to every connection.
        clients.run(
            wait_for(
                lambda: all(len(other.messages) == published for other in others),
                30,
                f"{published} messages at every client that reads",
            )
        )

    # Until the server's socket towards the stalled client takes no more: its sender waits.
    unsent = [-2, -1]
    while unsent[-1] != unsent[-2]:
        assert published < 1000, f"the server's send queue kept growing: {unsent}"
        publish(20)
        unsent.append(wsclients.unsent_bytes(service.port, stalled.local_port))
    # Then its queue fills, and the next message closes it.
    publish(queue_size + 2)
    # The close frame waits behind what the stalled client has not read yet.
    clients.call(stalled.resume_reading)
    clients.run(wait_for(lambda: stalled.closed, 30, "the stalled client's close"))
    assert stalled.close_code == 4008
    assert stalled.close_reason
    # What was sent before its queue overflowed, in order; the rest was dropped for it alone.
    got = [message.data["seq"] for message in stalled.messages]
    assert got == list(range(len(got)))
    assert len(got) < published

    publish(5)
    for other in others:
        assert [message.data["seq"] for message in other.messages] == list(range(published))
        assert not other.closed
    assert metric(service, "websocket_closes_total", code="4008") == 1


def test_sigterm_with_a_thousand_clients_closes_each_with_1012_inside_the_budget(
    start: Callable[..., Service], clients: LoopThread
) -> None:
    service = start(SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS))
    channel = unique_channel()
    url = channel_url(service.port, channel)
    subscribers = clients.run(subscribe_many([url], count=SHUTDOWN_CLIENTS, concurrency=100))
    assert set(workers_holding(service, subscribers)) == service.worker_pids()
    assert service.process is not None

    sigterm_at = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    service.wait_until(lambda: service.status("/ready") == 503, 0.5, "/ready to turn 503")

    # While draining, the connections that are open keep being served; new ones are refused.
    status, body = post(service, channel, {"during": "drain"})
    assert status == 202, body
    clients.run(
        wait_for(
            lambda: all(len(subscriber.messages) == 1 for subscriber in subscribers),
            DRAIN_SECONDS,
            "the message published while draining at every client",
        )
    )
    with pytest.raises(InvalidStatus) as refused:
        clients.run(subscribe(url))
    assert refused.value.response.status_code == 503

    clients.run(
        wait_for(
            lambda: all(subscriber.closed for subscriber in subscribers),
            SHUTDOWN_BUDGET_SECONDS - (time.monotonic() - sigterm_at),
            f"all {SHUTDOWN_CLIENTS} clients to be closed",
        )
    )
    exit_code = service.process.wait(timeout=SHUTDOWN_BUDGET_SECONDS)
    stopped_after = time.monotonic() - sigterm_at

    closes = Counter((s.close_code, s.close_reason) for s in subscribers)
    assert closes == {(1012, "server restarting"): SHUTDOWN_CLIENTS}
    assert [s.connection_error for s in subscribers if s.reset] == []
    closed_after = [s.closed_at - sigterm_at for s in subscribers if s.closed_at is not None]
    assert min(closed_after) >= DRAIN_SECONDS - 0.5
    assert max(closed_after) < SHUTDOWN_BUDGET_SECONDS
    assert exit_code == 0
    assert stopped_after < SHUTDOWN_BUDGET_SECONDS


@pytest.mark.parametrize("outage", ["cut", "blackhole"])
def test_while_redis_is_unreachable_publishes_fail_clearly_and_delivery_resumes_after(
    start: Callable[..., Service], clients: LoopThread, outage: str
) -> None:
    redis = urlsplit(REDIS_URL)
    proxy = TcpProxy(target_port=redis.port or 6379)
    proxy.start()
    try:
        credentials = redis.netloc.rpartition("@")[0]
        netloc = f"{credentials}@" * bool(credentials) + f"127.0.0.1:{proxy.port}"
        service = start(REDIS_URL=redis._replace(netloc=netloc).geturl())
        channel = unique_channel()
        url = channel_url(service.port, channel)
        subscribers = clients.run(subscribe_many([url], count=10))
        assert post(service, channel, {"seq": 0})[0] == 202
        clients.run(wait_for(lambda: all(s.messages for s in subscribers), 10, "message 0"))
        status, body = ready(service)
        assert (status, body["checks"]) == (200, {"redis": "ok"})

        workers = service.worker_pids()
        getattr(proxy, outage)()
        service.wait_until(lambda: service.status("/ready") == 503, 10, "/ready to turn 503")
        status, body = ready(service)
        assert body["checks"]["redis"] != "ok", body
        assert service.status("/health") == 200
        posted_at = time.monotonic()
        status, body = post(service, channel, {"seq": "lost"})
        assert (status, sorted(body)) == (503, ["detail"])
        assert time.monotonic() - posted_at < 5  # REDIS_TIMEOUT, 2 s, and a margin
        publisher, stayed = subscribers[0], subscribers[1:]
        clients.run(publisher.publish({"seq": "lost"}))
        clients.run(wait_for(lambda: publisher.closed, 10, "the publisher's close"))
        assert publisher.close_code == 1013
        assert publisher.close_reason
        with pytest.raises(InvalidStatus) as refused:
            clients.run(subscribe(url))
        assert refused.value.response.status_code == 503

        proxy.start()
        service.wait_until(lambda: ready(service)[0] == 200, 20, "/ready to turn 200 again")
        # Each worker re-subscribes on its own; what is published before it has is not
        # delivered to its clients (at-most-once), so publish until every client has one.
        for seq in range(1, 21):
            assert post(service, channel, {"seq": seq})[0] == 202

            def delivered(seq: int = seq) -> bool:
                return all(s.messages[-1].data["seq"] == seq for s in stayed)

            with contextlib.suppress(AssertionError):
                clients.run(wait_for(delivered, 1, f"message {seq} at every client"))
                break
        else:
            pytest.fail("delivery did not resume within 20 messages after Redis came back")
        for subscriber in stayed:
            # The same connection all along: nothing closed, nothing reconnected.
            assert not subscriber.closed
            received = [message.data["seq"] for message in subscriber.messages]
            assert received[0] == 0
            assert received[1:] == sorted(received[1:]), received
            assert received[-1] == seq
        assert service.worker_pids() == workers  # and no worker restarted
    finally:
        proxy.shutdown()


def test_a_connection_reaching_its_age_limit_is_closed_with_1001_and_the_client_comes_back(
    start: Callable[..., Service], clients: LoopThread
) -> None:
    max_age = 2.0
    service = start(WEB_CONCURRENCY="1", WS_MAX_CONNECTION_AGE=str(max_age))
    url = channel_url(service.port, unique_channel())

    followers = clients.run(follow_many(url, count=20))
    try:
        clients.run(
            wait_for(
                lambda: all(len(f.connections) >= 2 and f.current for f in followers),
                3 * max_age + 5,
                "every client to be closed for its age and to reconnect",
            )
        )
        for follower in followers:
            first = follower.connections[0]
            assert (first.close_code, bool(first.close_reason)) == (1001, True)
            assert first.closed_at is not None
            # The deadline is jittered down by up to 10 %, so connections do not expire together.
            lasted = first.closed_at - first.connected_at
            assert 0.9 * max_age - 0.1 <= lasted <= max_age + 1, lasted
            code, delay = follower.reconnects[0]
            assert code == 1001
            assert 0 <= delay <= RECONNECT_BASE_SECONDS
    finally:
        clients.run(stop_following(followers))


def test_the_clients_reconnect_after_a_full_jitter_delay_reset_by_a_lasting_connection() -> None:
    rng = random.Random(18)  # noqa: S311 - reproducible jitter, not a secret
    for attempt in range(12):
        ceiling = min(RECONNECT_CAP_SECONDS, RECONNECT_BASE_SECONDS * 2**attempt)
        delays = [wsclients.reconnect_delay(attempt, rng) for _ in range(500)]
        assert all(0 <= delay <= ceiling for delay in delays)
        # Spread over the whole range, not bunched at its top (which would stampede).
        assert min(delays) < 0.05 * ceiling
        assert max(delays) > 0.95 * ceiling
    assert wsclients.reconnect_delay(10_000, rng) <= RECONNECT_CAP_SECONDS

    backoff = Backoff(random.Random(18))  # noqa: S311 - as above
    ceilings = []
    for connected_for in (None, 1.0, None, 5.0, STABLE_AFTER_SECONDS, None):
        attempt = backoff.attempt if connected_for != STABLE_AFTER_SECONDS else 0
        ceilings.append(min(RECONNECT_CAP_SECONDS, RECONNECT_BASE_SECONDS * 2**attempt))
        assert backoff.delay(connected_for) <= ceilings[-1]
    # Failures and short connections double the ceiling; a 30 s connection starts it again.
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 0.5, 1.0]

    # A close for the client's own frames or channel would only repeat: it does not reconnect.
    assert sorted(code for code in range(1000, 5000) if not wsclients.should_reconnect(code)) == (
        sorted(NO_RECONNECT_CODES)
    )
    assert {1003, 1007, 1008, 1009} == NO_RECONNECT_CODES
    assert all(wsclients.should_reconnect(code) for code in (1001, 1011, 1012, 1013, 4008))

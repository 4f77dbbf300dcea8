"""The benchmark harness (benchmarks/run.py) on synthetic numbers, so it cannot rot unnoticed.

The harness itself measures for minutes on a quiet machine and is not a test; this checks that
it imports, reads wrk's output, and writes a report that states every target and its verdict.
The channels benchmark also runs once for real on a small crowd (marker websockets), and the
inference benchmark on a few requests (marker inference): their measurements are client loops
and servers that could rot without a synthetic number noticing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks import inference, report, run, serving, websockets
from testkit.inference import small_classifier


def load_runs(*requests_per_s: float, p99_ms: float = 20.0) -> list[dict[str, Any]]:
    return [
        {
            "requests": int(rate * 10),
            "seconds": 10.0,
            "requests_per_s": rate,
            "p50_ms": 4.0,
            "p99_ms": p99_ms,
            "errors": 0,
        }
        for rate in requests_per_s
    ]


def framework_results(
    rendered_rate: float, cold_start: float, items_p99_ms: float = 22.0, rss: float = 60.0
) -> dict[str, Any]:
    bare_worker = {"rss": 50.0, "pss": 30.0}
    return {
        "workers": 2,
        "rendered": {
            "command": "gunicorn -c gunicorn.conf.py",
            "environment": [],
            "ready_path": "/ready",
        },
        "bare": {
            "description": "a bare app",
            "command": "uvicorn app.main:app",
            "ready_path": "/health",
        },
        "bare_items": {"description": "a bare endpoint", "command": "uvicorn app.items:app"},
        "load": {
            "tool": "wrk -t2 -c50 -d10s",
            "rounds": 3,
            "items_path": "/api/v1/items",
            "seeded_items": 50,
            "load_average_per_round": [0.5, 0.6, 0.7],
        },
        "health": {
            "rendered": load_runs(rendered_rate, rendered_rate - 100, rendered_rate + 100),
            "bare": load_runs(10_000, 9_900, 10_100),
        },
        "items": {
            "rendered": load_runs(1_000, 1_100, 900, p99_ms=items_p99_ms),
            "bare": load_runs(1_050, 1_000, 1_100),
        },
        "cold_start_seconds": {"rendered": [cold_start] * 5, "bare": [0.3] * 5},
        "memory_mib": {
            "rendered": {
                "idle": [{"rss": rss, "pss": 40.0}] * 2,
                "after_load": [{"rss": rss + 1, "pss": 41.0}] * 2,
            },
            "bare": {"idle": [bare_worker] * 2, "after_load": [bare_worker] * 2},
            "bare_items": {"after_load": [{"rss": 58.0, "pss": 38.0}] * 2},
        },
        "app_cost_us": {
            "rendered": {"every middleware": 60.0, "without AccessLogMiddleware": 48.5},
            "bare": {"every middleware": 37.0},
        },
    }


def synthetic_results(
    fastapi_rate: float = 10_500,
    django_cold_start: float = 0.8,
    items_p99_ms: float = 22.0,
    rss: float = 60.0,
) -> dict[str, Any]:
    return {
        "measured_at": "2026-01-01 00:00 UTC",
        "machine": {
            "cpu_model": "Test CPU",
            "cpus": 2,
            "usable_cpus": 2,
            "memory_gib": 4.0,
            "kernel": "6.1",
            "os": "Debian",
            "python": {"harness": "3.11.7", "services": "3.11.7", "image": "3.13, 3.12"},
            "packages": {"fastapi": "1.0"},
            "wrk": "wrk 4.1.0",
            "load_average_at_start": [0.5, 0.7, 0.9],
            "template_commit": "abc1234",
            "waited_for_quiet_seconds": 60,
            "quiet": True,
        },
        "serving": {
            "fastapi": framework_results(fastapi_rate, 0.6, items_p99_ms, rss),
            "django": framework_results(8_500, django_cold_start),
        },
        "bake": {"runs_seconds": [0.8, 0.9, 0.85, 0.82, 0.88], "load_average_after": [1.5, 1, 1]},
        "matrix": {
            "combinations": 60,
            "supported": 48,
            "refused": 12,
            "manifest_sets": 20,
            "python_sets": 10,
            "render_seconds": 5.0,
            "bake_seconds": 50.0,
            "checks_seconds": 20.0,
            "refusals_seconds": 5.0,
            "total_seconds": 75.0,
            "problems": {},
            "all_refused_cleanly": True,
        },
    }


def verdict_rows(markdown: str) -> dict[str, str]:
    """Target -> verdict, from the Markdown table under "## Targets"."""
    table = markdown.split("## Targets", 1)[1].split("\n\n", 2)[1]
    rows = [line.strip("|").split(" | ") for line in table.splitlines()[2:]]
    return {target.strip(): verdict.strip() for target, _, verdict in rows}


def test_the_report_states_every_target_and_keeps_every_run(tmp_path: Path) -> None:
    results = synthetic_results()
    markdown_path, json_path = report.write_report(results, tmp_path / "docs")

    markdown = markdown_path.read_text()
    assert json.loads(json_path.read_text()) == results
    assert list(verdict_rows(markdown).values()) == ["met"] * 13
    assert (
        "| `/health` requests/s | 10,500 (10,400-10,600) | 10,000 (9,900-10,100) | **1.05x**"
        in markdown
    )
    assert (
        "| Items list p99 latency, ms | 22.00 (22.00-22.00) | 20.00 (20.00-20.00) | 1.10x |"
        in markdown
    )
    assert "1-minute load average at each round: 0.5, 0.6, 0.7" in markdown
    assert "| of which `AccessLogMiddleware` | 11.5 |" in markdown
    assert "| CPU | Test CPU, 2 CPUs (2 usable) |" in markdown
    assert "| Load average (1 min) after each part | bake 1.50 |" in markdown
    assert "waited 60 s for the 1-minute average to drop below 1.0" in markdown
    assert run.__doc__ is not None
    assert report.COMMAND in run.__doc__


@pytest.mark.parametrize(
    ("answers", "target", "verdict"),
    [
        ({"fastapi_rate": 9_000}, "FastAPI `/health` requests/s", "**missed**: 0.10x short"),
        ({"items_p99_ms": 30.0}, "FastAPI items list p99", "**missed**: 0.30x over"),
        ({"rss": 70.0}, "FastAPI RSS per idle worker", "**missed**: 0.10x over"),
        ({"django_cold_start": 1.75}, "Django cold start to ready", "**missed**: 0.25 s over"),
    ],
)
def test_a_missed_target_says_by_how_much(
    tmp_path: Path, answers: dict[str, float], target: str, verdict: str
) -> None:
    markdown_path, _ = report.write_report(synthetic_results(**answers), tmp_path)

    verdicts = verdict_rows(markdown_path.read_text())
    assert [found for name, found in verdicts.items() if name.startswith(target)] == [verdict]


def test_a_baseline_becomes_a_before_and_after_table(tmp_path: Path) -> None:
    results = synthetic_results()
    results["baseline"] = {
        "note": "Workers recycle less often.",
        "results": synthetic_results(5_000),
    }

    markdown = report.markdown(results)

    assert "Workers recycle less often." in markdown
    assert "| FastAPI rendered /health requests/s | 5,000 | 10,500 |" in markdown
    assert "| FastAPI rendered/bare throughput | 0.50 | 1.05 |" in markdown


def test_wrk_output_is_read_from_the_summary_script() -> None:
    stdout = (
        "Running 10s test @ http://127.0.0.1:8000/health\n"
        "  2 threads and 50 connections\n"
        '{"requests": 50000, "duration_us": 10000000, "p50_us": 3100, "p99_us": 25000,'
        ' "max_us": 90000, "connect": 0, "read": 2, "write": 0, "status": 1, "timeout": 0}\n'
    )

    assert serving.parse_wrk(stdout) == {
        "requests": 50000,
        "seconds": 10.0,
        "requests_per_s": 5000.0,
        "p50_ms": 3.1,
        "p99_ms": 25.0,
        "errors": 3,
    }


def test_a_missed_throughput_target_is_explained_by_the_in_process_costs() -> None:
    markdown = report.markdown(synthetic_results(fastapi_rate=8_000))

    assert (
        "inside the app a request costs 60.0 µs of CPU rendered against 37.0 µs bare"
        " (+23.0 µs), spent in the middleware the bare app does not have:"
        " `AccessLogMiddleware` 11.5 µs"
    ) in markdown
    assert "Why FastAPI's `/health` target is missed" not in report.markdown(synthetic_results())


def test_a_missed_memory_target_separates_the_database_layer_from_the_template() -> None:
    markdown = report.markdown(synthetic_results(rss=70.0))

    assert (
        "a rendered worker holds 70.0 MiB against the bare app's 50.0 MiB. The bare items"
        " endpoint, which loads only the framework, the ORM and the driver, holds 58.0 MiB:"
        " 8.0 MiB of the difference is the database layer"
    ) in markdown


def channels_run(held: int, rate: float, p99_ms: float) -> dict[str, Any]:
    return {
        "clients": 5000,
        "held": held,
        "rss_idle_mib": 60.0,
        "rss_per_1000_mib": 12.5,
        "delivery_rate": rate,
        "p50_ms": p99_ms / 4,
        "p99_ms": p99_ms,
        "cpus": 2,
        "server_cpu_share": 0.97,
        "client_cpu_shares": [0.6, 0.55],
    }


def slow_run(p99_ms: float, close_code: int | None = None) -> dict[str, Any]:
    stalled = None
    if close_code is not None:
        stalled = {"close_code": close_code, "messages_before_close": 400}
    return {"p50_ms": p99_ms / 4, "p99_ms": p99_ms, "stalled": stalled}


def channels_results(
    rate: float = 90_000, held: int = 5000, slow_p99_ms: float = 30.0, close_code: int = 4008
) -> dict[str, Any]:
    return {
        "shape": {
            "clients": 5000,
            "messages": 100,
            "rounds": 1,
            "client_processes": 2,
            "padding_bytes": 64,
        },
        "load_average_per_round": [0.4],
        "packages": {"websockets": "17.4"},
        "rendered": {"description": "one rendered worker", "runs": [channels_run(held, rate, 80)]},
        "bare": {"description": "a bare loop", "runs": [channels_run(5000, 100_000, 70)]},
        "slow_client": {
            "clients": 500,
            "messages": 600,
            "rate": 50,
            "padding_bytes": 8192,
            "runs": {"without": [slow_run(20.0)], "with": [slow_run(slow_p99_ms, close_code)]},
        },
    }


def test_the_channels_benchmark_reports_its_targets_and_which_side_was_saturated(
    tmp_path: Path,
) -> None:
    results = synthetic_results() | {"websockets": channels_results()}
    markdown_path, _ = report.write_report(results, tmp_path)

    markdown = markdown_path.read_text()
    verdicts = verdict_rows(markdown)
    channels = {name: found for name, found in verdicts.items() if name.startswith("Channels")}
    assert list(channels.values()) == ["met"] * 4
    assert "| Deliveries/s (messages x clients) | 90,000 | 100,000 | **0.90x** |" in markdown
    assert "| RSS per 1,000 idle connections, MiB | 12.50 | 12.50 | 1.00x |" in markdown
    assert "| CPU-bound side per run | server | server |" in markdown
    assert "| Others' p99 latency, ms | 20.0 | 30.0 | **1.50x** |" in markdown
    assert "| The stalled client's close | | 4008 after 400 messages | |" in markdown


@pytest.mark.parametrize(
    ("answers", "target", "verdict"),
    [
        ({"rate": 70_000}, "Channels deliveries/s", "**missed**: 0.10x short"),
        ({"held": 4990}, "Channels: one worker holds", "**missed**: 10 short"),
        ({"slow_p99_ms": 50.0}, "Channels: the other clients' p99", "**missed**: 0.50x over"),
        ({"close_code": 1006}, "Channels: a client that stops", "**missed**: not closed with 4008"),
    ],
)
def test_a_missed_channels_target_says_by_how_much(
    tmp_path: Path, answers: dict[str, Any], target: str, verdict: str
) -> None:
    results = synthetic_results() | {"websockets": channels_results(**answers)}
    markdown_path, _ = report.write_report(results, tmp_path)

    verdicts = verdict_rows(markdown_path.read_text())
    assert [found for name, found in verdicts.items() if name.startswith(target)] == [verdict]


@pytest.mark.websockets
def test_the_channels_benchmark_runs_on_a_small_crowd(
    baked: Callable[..., Path], project_venv: Callable[[Path], Path], tmp_path: Path
) -> None:
    """The real measurement with quick values: every number the report reads is there."""
    project = baked(**websockets.ANSWERS)
    deployment = websockets.ChannelsDeployment(
        project,
        project_venv(project),
        serving.write_baseline(tmp_path / "bare", {"broadcast.py": websockets.BARE_BROADCAST}),
    )
    shape = websockets.Shape(
        clients=40,
        messages=10,
        rounds=1,
        client_processes=2,
        slow_clients=10,
        slow_messages=600,
        slow_rate=1000,
    )

    measured = websockets.compare(deployment, shape, tmp_path, lambda message: None)

    for contender in ("rendered", "bare"):
        (run,) = measured[contender]["runs"]
        assert run["held"] == 40
        assert run["delivered"] == 40 * 10
        assert run["publish_statuses"] == {"202": 10}
        assert run["p99_ms"] >= run["p50_ms"] > 0
    (stalled,) = measured["slow_client"]["runs"]["with"]
    assert stalled["stalled"]["close_code"] == 4008
    assert stalled["delivered"] == 10 * 600
    markdown = report.markdown(synthetic_results() | {"websockets": measured})
    assert "## WebSocket channels: one rendered worker and a bare broadcast loop" in markdown


def inference_run(rate: float, health_p99_ms: float, rejected: int = 0) -> dict[str, Any]:
    statuses = {"200": int(rate * 10)} | ({"503": rejected} if rejected else {})
    return {
        "seconds": 10.0,
        "statuses": statuses,
        "requests_per_s": rate,
        "p50_ms": 300.0,
        "p99_ms": 600.0,
        "max_ms": 650.0,
        "rejected_p99_ms": 3.0 if rejected else None,
        "health_probes": 800,
        "health_p50_ms": health_p99_ms / 10,
        "health_p99_ms": health_p99_ms,
        "health_max_ms": health_p99_ms * 2,
        "errors": 0,
    }


def inference_results(rate: float = 60.0, health_p99_ms: float = 20.0) -> dict[str, Any]:
    return {
        "shape": {
            "clients": 32,
            "requests": 1500,
            "rounds": 1,
            "rows": 64,
            "layers": [4, 2048, 3],
            "health_interval_ms": 10.0,
        },
        "cpus": 2,
        "load_average_per_round": [0.4],
        "packages": {"onnxruntime": "1.32.0"},
        "rendered": {
            "description": "one rendered worker",
            "runs": [inference_run(rate, health_p99_ms, rejected=150)],
        },
        "naive": {"description": "the naive endpoint", "runs": [inference_run(50.0, 1000.0)]},
    }


def test_the_inference_benchmark_reports_its_targets_beside_the_naive_endpoint(
    tmp_path: Path,
) -> None:
    results = synthetic_results() | {"inference": inference_results()}
    markdown_path, _ = report.write_report(results, tmp_path)

    markdown = markdown_path.read_text()
    verdicts = verdict_rows(markdown)
    found = {name: verdict for name, verdict in verdicts.items() if name.startswith("Inference")}
    assert list(found.values()) == ["met"] * 2
    assert "## Model inference: one rendered worker and the naive endpoint" in markdown
    assert "| Predictions/s (batches answered 200) | 60.0 | 50.0 | **1.20x** |" in markdown
    assert "| `/health` p99 under load, ms | 20.00 | 1,000.00 | **0.02x** |" in markdown
    assert "| Answered 503 at once (queue full), all runs | 150 | 0 | |" in markdown


@pytest.mark.parametrize(
    ("answers", "target", "verdict"),
    [
        ({"rate": 45.0}, "Inference predictions/s", "**missed**: 0.10x short"),
        ({"health_p99_ms": 200.0}, "Inference: `/health` p99", "**missed**: 0.100x over"),
    ],
)
def test_a_missed_inference_target_says_by_how_much(
    tmp_path: Path, answers: dict[str, float], target: str, verdict: str
) -> None:
    results = synthetic_results() | {"inference": inference_results(**answers)}
    markdown_path, _ = report.write_report(results, tmp_path)

    verdicts = verdict_rows(markdown_path.read_text())
    assert [found for name, found in verdicts.items() if name.startswith(target)] == [verdict]


@pytest.mark.inference
def test_the_inference_benchmark_runs_on_a_few_requests(
    baked: Callable[..., Path], project_venv: Callable[[Path], Path], tmp_path: Path
) -> None:
    """The real measurement with quick values: every number the report reads is there."""
    project = baked(**inference.ANSWERS)
    deployment = inference.InferenceDeployment(
        project,
        project_venv(project),
        serving.write_baseline(tmp_path / "naive", {"naive.py": inference.NAIVE_APP}),
        small_classifier(tmp_path / "model" / "classifier.onnx"),
    )
    shape = inference.Shape(clients=24, requests=60, rounds=1)

    measured = inference.compare(deployment, shape, tmp_path, lambda message: None)

    for contender in ("rendered", "naive"):
        (result,) = measured[contender]["runs"]
        assert result["errors"] == 0
        assert result["statuses"]["200"] > 0
        assert sum(result["statuses"].values()) == 60
        assert result["p99_ms"] >= result["p50_ms"] > 0
        assert result["health_probes"] > 0
    # The naive endpoint has no queue limit: it never turns a request away.
    assert measured["naive"]["runs"][0]["statuses"] == {"200": 60}
    markdown = report.markdown(synthetic_results() | {"inference": measured})
    assert "## Model inference: one rendered worker and the naive endpoint" in markdown

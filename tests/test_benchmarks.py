"""The benchmark harness (benchmarks/run.py) on synthetic numbers, so it cannot rot unnoticed.

The harness itself measures for minutes on a quiet machine and is not a test; this checks that
it imports, reads wrk's output, and writes a report that states every target and its verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report, run, serving


def load_runs(*requests_per_s: float) -> list[dict[str, Any]]:
    return [
        {
            "requests": int(rate * 10),
            "seconds": 10.0,
            "requests_per_s": rate,
            "p50_ms": 4.0,
            "p99_ms": 20.0,
            "errors": 0,
        }
        for rate in requests_per_s
    ]


def framework_results(rendered_rate: float, cold_start: float) -> dict[str, Any]:
    worker = {"rss": 70.0, "pss": 40.0}
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
        "load": {
            "tool": "wrk -t2 -c50 -d10s",
            "rounds": 3,
            "items_path": "/api/v1/items",
            "seeded_items": 50,
        },
        "health": {
            "rendered": load_runs(rendered_rate, rendered_rate - 100, rendered_rate + 100),
            "bare": load_runs(10_000, 9_900, 10_100),
        },
        "items": {"rendered": load_runs(1_000, 1_100, 900)},
        "cold_start_seconds": {"rendered": [cold_start] * 5, "bare": [0.3] * 5},
        "memory_mib": {
            contender: {"idle": [worker, worker], "after_load": [worker, worker]}
            for contender in ("rendered", "bare")
        },
        "app_cost_us": {
            "rendered": {"every middleware": 60.0, "without AccessLogMiddleware": 48.5},
            "bare": {"every middleware": 37.0},
        },
    }


def synthetic_results(
    fastapi_rate: float = 9_500, django_cold_start: float = 0.8
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
            "fastapi": framework_results(fastapi_rate, 0.6),
            "django": framework_results(4_000, django_cold_start),
        },
        "bake": {"runs_seconds": [0.8, 0.9, 0.85, 0.82, 0.88], "load_average_after": [1.5, 1, 1]},
        "matrix": {
            "combinations": 60,
            "supported": 48,
            "refused": 12,
            "jobs": 2,
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
    assert list(verdict_rows(markdown).values()) == ["met"] * 5
    assert (
        "| `/health` requests/s | 9,500 (9,400-9,600) | 10,000 (9,900-10,100) | **0.95x**"
        in markdown
    )
    assert "| of which `AccessLogMiddleware` | 11.5 |" in markdown
    assert "| CPU | Test CPU, 2 CPUs (2 usable) |" in markdown
    assert "| Load average (1 min) after each part | bake 1.50 |" in markdown
    assert "waited 60 s for the 1-minute average to drop below 1.0" in markdown
    assert run.__doc__ is not None
    assert report.COMMAND in run.__doc__


@pytest.mark.parametrize(
    ("answers", "target", "verdict"),
    [
        (
            {"fastapi_rate": 8_000},
            "Rendered FastAPI `/health` throughput",
            "**missed**: 0.10x short",
        ),
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
    assert "| FastAPI rendered /health requests/s | 5,000 | 9,500 |" in markdown
    assert "| FastAPI rendered/bare throughput | 0.50 | 0.95 |" in markdown


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
        "inside the app a `/health` request costs 60.0 µs rendered against 37.0 µs bare"
        " (+23.0 µs), spent in the middleware the bare app does not have:"
        " `AccessLogMiddleware` 11.5 µs"
    ) in markdown
    assert "Why the throughput target is missed" not in report.markdown(synthetic_results())

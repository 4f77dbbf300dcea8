"""The Django admin, the one web page the template ships, used in a real browser.

Debian's chromium, driven by playwright-core (tests/browser), against the service run as its
image runs it: the static files collected (`collectstatic`, as the Dockerfile does) into the
files the image holds, served by WhiteNoise under gunicorn, production settings.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit.services import Service, collect_static, database_url, in_venv, throwaway_database
from tests.test_django_edge import CREATE_ADMIN, POD, image_tree

pytestmark = pytest.mark.browser

BROWSER_DIR = Path(__file__).parent / "browser"
CHROMIUM = Path("/usr/bin/chromium")
ADMIN_SCRIPT = ["node", str(BROWSER_DIR / "admin.mjs")]
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throw-away test account


def test_admin_login_create_and_edit_in_a_browser(
    baked: Callable[..., Path],
    project_venv: Callable[[Path], Path],
    tmp_path: Path,
) -> None:
    assert CHROMIUM.is_file(), "chromium is missing: apt-get install chromium (tests/run.sh does)"
    assert (BROWSER_DIR / "node_modules").is_dir(), (
        "run npm ci --prefix tests/browser (run.sh does)"
    )
    project = baked(framework="django", database="postgresql", exposure="ingress")
    venv = project_venv(project)
    app = image_tree(project, tmp_path / "app")
    collect_static(app, venv)
    path = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin"}

    with throwaway_database() as name:
        env = {**POD, "DATABASE_URL": database_url(name), "SHUTDOWN_DRAIN_SECONDS": "0"}
        for command in (
            ["python", "manage.py", "migrate_locked"],
            [*CREATE_ADMIN, "--username", "admin", "--email", "admin@example.com"],
        ):
            done = subprocess.run(
                in_venv(venv, command),
                cwd=app,
                env={**path, **env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        service = Service(app, venv, {**env, "WEB_CONCURRENCY": "1"}, tmp_path / "server.log")
        service.start()
        try:
            browser = subprocess.run(
                [*ADMIN_SCRIPT, f"http://localhost:{service.port}", "admin", PASSWORD],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            service.stop()

    assert browser.stdout, browser.stderr
    report = json.loads(browser.stdout)
    assert "error" not in report, report
    assert report["steps"] == [
        {"step": "logged in", "title": "Site administration | Django site admin"},
        {"step": "created", "names": ["Created in a browser"]},
        {"step": "edited", "names": ["Edited in a browser"]},
    ]
    # WhiteNoise served the collected, hashed files; the stylesheet took effect.
    stylesheets = [f for f in report["static"] if f["path"].endswith(".css")]
    assert stylesheets, report["static"]
    assert all(f["status"] == 200 for f in report["static"]), report["static"]
    assert all(f["type"].startswith("text/css") for f in stylesheets)
    assert any(f["path"].startswith("/static/admin/css/base.") for f in stylesheets)
    assert report["headerBackground"] not in ("rgba(0, 0, 0, 0)", "")
    # The browser asks for /favicon.ico by itself; the service has none (a JSON 404).
    errors = [e for e in report["consoleErrors"] if not e["url"].endswith("/favicon.ico")]
    assert errors == []

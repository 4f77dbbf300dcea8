"""The app's own settings, for the test run, with a throw-away SECRET_KEY."""

import os
import secrets

os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)

from {{ cookiecutter.package_name }}.settings import *  # noqa: F403

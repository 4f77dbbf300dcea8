"""The app's own settings, for the test run, with a throw-away SECRET_KEY."""

import os
import secrets

# The settings default to production; the tests opt into development, as `make run` does.
os.environ["ENVIRONMENT"] = "development"
os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)

from {{ cookiecutter.package_name }}.settings import *  # noqa: F403

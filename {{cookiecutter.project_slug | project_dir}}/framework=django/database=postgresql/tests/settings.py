"""The app's own settings, for the test run: a throw-away key and the TEST_DATABASE_URL server.

pytest-django creates its own database on that server and drops it at the end; nothing else on
the server is touched.
"""

import os
import secrets

# The settings default to production; the tests opt into development, as `make run` does.
os.environ["ENVIRONMENT"] = "development"
os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
os.environ["DATABASE_URL"] = os.environ.get(
    "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

from {{ cookiecutter.package_name }}.settings import *  # noqa: F403

# A database of its own per run, so that concurrent runs do not collide.
DATABASES["default"]["TEST"] = {"NAME": f"test_{secrets.token_hex(6)}"}  # noqa: F405
# No collected static files outside the image: look them up on demand instead.
WHITENOISE_AUTOREFRESH = True

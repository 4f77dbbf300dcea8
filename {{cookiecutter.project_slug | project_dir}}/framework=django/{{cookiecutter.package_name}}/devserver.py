"""`make run`: Django's development server on 127.0.0.1, reloading when the code changes.

PORT comes from the environment or `.env`, read as every other entry point reads its settings.
"""

import os
import sys

from django.core.management import execute_from_command_line

from {{ cookiecutter.package_name }} import settings  # noqa: F401 - loads .env

if __name__ == "__main__":
    os.environ.setdefault(
        "DJANGO_SETTINGS_MODULE",
        "{{ cookiecutter.package_name }}.settings",
    )
    address = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
    execute_from_command_line([sys.argv[0], "runserver", address, *sys.argv[1:]])

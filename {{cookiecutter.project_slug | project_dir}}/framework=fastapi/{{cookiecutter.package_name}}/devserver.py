"""`make run`: uvicorn on 127.0.0.1, reloading when the code changes.

PORT comes from the environment or `.env`, read as every other entry point reads its settings.
"""

import os

import uvicorn

from {{ cookiecutter.package_name }}.core import settings  # noqa: F401 - loads .env

if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    uvicorn.run(
        "{{ cookiecutter.package_name }}.main:app",
        host="127.0.0.1",
        port=port,
        reload=True,
    )

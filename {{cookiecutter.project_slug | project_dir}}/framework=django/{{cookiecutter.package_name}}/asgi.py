"""The ASGI application gunicorn serves (gunicorn.conf.py names it), behind core/serving.py."""

import gc
import os
{%- if cookiecutter.database == "postgresql" %}
import warnings
{%- endif %}

from django.core.asgi import get_asgi_application

from {{ cookiecutter.package_name }}.core.tracing import start_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.package_name }}.settings")
{%- if cookiecutter.database == "postgresql" %}

# WhiteNoise hands Django the admin's static files as synchronous iterators, which Django reads
# on the request's thread; for files that small, that is fine, and not worth a warning each.
warnings.filterwarnings(
    "ignore", "StreamingHttpResponse must consume synchronous iterators", Warning
)
{%- endif %}

# Before the application is built: the instrumentation adds its middleware to the settings'.
start_tracing()
django_application = get_asgi_application()

# Imported once Django is set up: it reads the settings and the app's modules.
from {{ cookiecutter.package_name }}.core.serving import ServingApplication  # noqa: E402

application = ServingApplication(django_application)

# What is built by now lives as long as the worker: frozen out of the garbage collector's
# reach, a full collection walks only what requests allocate instead of stalling every
# request in flight while it walks Django's objects.
gc.freeze()

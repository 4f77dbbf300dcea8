"""The WSGI application gunicorn serves (gunicorn.conf.py names it)."""

import os

from django.core.wsgi import get_wsgi_application

from {{ cookiecutter.package_name }}.core.tracing import start_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.package_name }}.settings")

# Before the application is built: the instrumentation adds its middleware to the settings'.
start_tracing()
application = get_wsgi_application()

"""Reject bad answers before anything is rendered; cookiecutter then removes the output."""

import json
import sys

CONTEXT = json.loads(r'{{ cookiecutter | tojson }}')  # tojson escapes every quote character
sys.path.insert(0, {{ bakery_path | tojson }})

from bakery.answers import InvalidAnswer, validate  # noqa: E402

try:
    validate(CONTEXT)
except InvalidAnswer as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)

"""Reject bad answers before anything is rendered; cookiecutter then removes the output."""

import json
import sys

# Rendered by cookiecutter: JSON escapes every quote inside its strings, so this literal holds.
CONTEXT = json.loads(r"""{{ cookiecutter | tojson }}""")
sys.path.insert(0, r"""{{ bakery_path }}""")

from bakery.answers import InvalidAnswer, validate

try:
    validate(CONTEXT)
except InvalidAnswer as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)

"""Shape the rendered project to the chosen options."""

import json
import sys
from pathlib import Path

# Rendered by cookiecutter: JSON escapes every quote inside its strings, so this literal holds.
CONTEXT = json.loads(r"""{{ cookiecutter | tojson }}""")
sys.path.insert(0, r"""{{ bakery_path }}""")

from bakery.facts import conditions
from bakery.layout import apply_layout
from bakery.local_env import write_local_env
from bakery.manifests import validate_manifests
from bakery.pins import PinError, write_locks

apply_layout(Path.cwd(), conditions(CONTEXT))
write_local_env(Path.cwd(), CONTEXT)
try:
    print(write_locks(Path.cwd(), CONTEXT))
except PinError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
# Last: the project's own manifest validator; a failure fails the bake (nothing is left behind).
sys.exit(validate_manifests(Path.cwd()))

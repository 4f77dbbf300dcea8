"""Shape the rendered project to the chosen options."""

import json
import sys
from pathlib import Path

CONTEXT = json.loads(r'{{ cookiecutter | tojson }}')  # tojson escapes every quote character
sys.path.insert(0, {{ bakery_path | tojson }})

from bakery.layout import remove_unwanted  # noqa: E402

remove_unwanted(Path.cwd(), CONTEXT)

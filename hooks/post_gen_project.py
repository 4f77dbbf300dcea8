"""Shape the rendered project to the chosen options."""

import json
import sys
from pathlib import Path

# Rendered by cookiecutter: JSON escapes every quote inside its strings, so this literal holds.
CONTEXT = json.loads(r"""{{ cookiecutter | tojson }}""")
sys.path.insert(0, r"""{{ bakery_path }}""")

from bakery.layout import remove_unwanted

remove_unwanted(Path.cwd(), CONTEXT)

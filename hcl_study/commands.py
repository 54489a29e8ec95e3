"""How printed commands name this environment's console scripts (`hcl-study`, `mlflow`)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def command(name: str) -> str:
    """How to run the console script `name` of this environment, so that a printed command
    runs as printed: `name` when the shell finds this script by that name (an activated
    environment), else its path, relative to the working folder when under it
    (`.venv/bin/hcl-study`).
    """
    script = Path(sys.executable).parent / name
    if not script.exists():
        return name
    found = shutil.which(name)
    if found and Path(found).resolve() == script.resolve():
        return name
    if script.is_relative_to(Path.cwd()):
        return str(script.relative_to(Path.cwd()))
    return str(script)

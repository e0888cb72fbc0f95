"""Where the project's data files (prompts, configs, web assets, icons) live."""

from __future__ import annotations

from pathlib import Path

import resources as _resources_pkg

RESOURCES_DIR = Path(_resources_pkg.__file__).resolve().parent


def resource_path(*parts: str) -> Path:
    """Absolute path of a file under ``resources/``; raises if it is missing."""
    path = RESOURCES_DIR.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"resource missing from the installation: {path}")
    return path

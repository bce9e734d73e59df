"""Where the project's chain files live (node_modules, contracts, build cache)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

PROJECT_ROOT_ENV: Final = "ISTHMUS_PROJECT_ROOT"


def project_root() -> Path:
    """The repository root: ``$ISTHMUS_PROJECT_ROOT`` or the directory holding ``gateway/``."""
    override = os.environ.get(PROJECT_ROOT_ENV)
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[2]


def contracts_dir() -> Path:
    return project_root() / "contracts"


def build_dir() -> Path:
    return project_root() / ".build"


def node_modules_dir() -> Path:
    return project_root() / "node_modules"

"""Where vipcli keeps its files when it is not told: the user's configuration folder, by the
platform's convention (the one typer's get_app_dir follows; a test holds the two together, so
that a database made by an older vipcli is still found)."""

import os
import sys
from pathlib import Path


def app_dir() -> Path:
    if sys.platform.startswith("win"):
        return Path(os.environ.get("APPDATA") or os.path.expanduser("~")) / "vipcli"
    if sys.platform == "darwin":
        return Path(os.path.expanduser("~/Library/Application Support")) / "vipcli"
    return Path(os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")) / "vipcli"


def default_db() -> Path:
    return app_dir() / "vip.db"

"""A till set up once: config.toml in the app directory (typer.get_app_dir's, vipcli/places.py) says
which database, which store, which language, for every command run there. Environment variables
override it, and flags override both; `vip config show` says what is in force and where each value
came from.

    db = "postgresql://till_sz01@vip.example.com/vip"
    store = "SZ01"
    lang = "zh"

A password never sits in the file nor on a command line: PostgreSQL reads it from ~/.pgpass (or
PGPASSFILE), as psql does.
"""

import os
import re
from contextlib import contextmanager
from pathlib import Path

from vipcli.errors import InvalidInput
from vipcli.i18n import _

# setting -> the environment variable it stands for (the flag, where there is one, overrides both)
SETTINGS = {
    "db": "VIPCLI_DB",
    "store": "VIPCLI_STORE",
    "lang": "VIPCLI_LANG",
    "operator": "VIPCLI_OPERATOR",
    "key_file": "VIPCLI_KEY_FILE",
    "busy_timeout": "VIPCLI_BUSY_TIMEOUT",
}
FLAGS = {"db": "--db", "lang": "--lang", "operator": "--operator"}  # (the root's; --store is a command's)

_from_file: dict[str, str] = {}  # what the file supplied to the command running now


def path() -> Path:
    from vipcli.places import app_dir

    return app_dir() / "config.toml"


def load(file: Path | None = None) -> dict[str, str]:
    """The file's settings (none when there is no file); a bad file is exit 2, naming the file."""
    import tomllib

    file = file or path()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(_("{file}: cannot be read ({exc})").format(file=file, exc=exc), code="bad_config") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(_("{file}: not valid TOML ({exc})").format(file=file, exc=exc), code="bad_config") from None
    settings = {}
    for key, value in data.items():
        if key not in SETTINGS:
            raise InvalidInput(_("{file}: unknown setting {key!r} (known: {known})").format(
                file=file, key=key, known=", ".join(SETTINGS)), code="bad_config")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidInput(_("{file}: {key} must be a text or a number").format(file=file, key=key),
                               code="bad_config")
        settings[key] = str(value)
    if "db" in settings:
        refuse_password(settings["db"], str(file))
    return settings


def refuse_password(url: str, where: str) -> None:
    """A database URL carrying a password is refused: it would sit in a file or a process list."""
    if re.match(r"^postgres(ql)?://[^/@]*:[^/@]*@", url) or re.search(r"[?&]password=", url):
        raise InvalidInput(_("{where}: a database password never goes in the URL; put it in ~/.pgpass (or "
                             "PGPASSFILE), as psql reads it").format(where=where), code="password_in_url")


@contextmanager
def applied():
    """While a command runs: each setting of the file that no environment variable gives already is put
    in the environment (so that flags, then variables, then the file decide), and taken out after."""
    settings = load()
    added = {SETTINGS[key]: value for key, value in settings.items() if SETTINGS[key] not in os.environ}
    _from_file.clear()
    _from_file.update({key: value for key, value in settings.items() if SETTINGS[key] in added})
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
        _from_file.clear()


def in_force(root_ctx, defaults: dict) -> dict:
    """Each setting: its value and where it came from (flag, environment, config file, default)."""
    shown = {}
    for key, variable in SETTINGS.items():
        name = FLAGS.get(key, "").lstrip("-")
        given = root_ctx.get_parameter_source(name) if name else None
        if given is not None and given.name == "COMMANDLINE":
            source, value = "flag", root_ctx.params[name]
        elif variable in os.environ:
            source, value = ("config" if key in _from_file else "environment"), os.environ[variable]
        else:
            source, value = "default", defaults.get(key)
        shown[key] = {"value": value, "source": source,
                      "from": {"flag": FLAGS.get(key), "environment": variable, "config": str(path())}.get(source)}
    return shown

"""The language a person reads: English (the messages as written in the code) or Simplified
Chinese (the gettext catalog vipcli/locale/zh_CN/LC_MESSAGES/vipcli.po, compiled to .mo).

The language is chosen once per command: `--lang`, else VIPCLI_LANG, else the first of LC_ALL,
LC_MESSAGES and LANG that is set (any zh* is Chinese), else English. Messages are marked `_()`
where they are shown and `N_()` where they are defined before a language is known (command help,
names of statuses); both are extracted by `pybabel extract` (see docs/translations.md). Only what
a person reads follows the language: JSON keys, codes, exit codes and export keys never do.

Typer's own words ("Usage:", "Options", its usage errors) go through the gettext module's global
domain, which `use` points at the same catalog."""

import gettext
import os
from pathlib import Path

LOCALES = Path(__file__).parent / "locale"
DOMAIN = "vipcli"
LANGUAGES = {"en": "en", "zh": "zh_CN"}  # --lang value -> catalog

_current = gettext.NullTranslations()
_language = "en"


def choose(flag: str | None = None, environ=os.environ) -> str:
    """'zh' or 'en': `flag` (--lang), VIPCLI_LANG, the POSIX locale variables, English."""
    for given in (flag, environ.get("VIPCLI_LANG")):
        if given:
            return language(given)
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def language(text: str) -> str:
    """A --lang or VIPCLI_LANG value: zh / en, or a locale name such as zh_CN.UTF-8."""
    value = text.strip().lower().replace("-", "_")
    if value.startswith("zh"):
        return "zh"
    if value in ("en", "c", "posix") or value.startswith("en_"):
        return "en"
    from vipcli.errors import InvalidInput

    raise InvalidInput(f"lang: {text!r} is not a language of vipcli (zh, en)", code="bad_lang")


def use(lang: str) -> None:
    """Show every message from now on in `lang` ('zh' or 'en')."""
    global _current, _language
    _language, _current = lang, _catalog(lang)
    # Typer's words: typer's core calls gettext.gettext, the global domain, whose language comes from
    # LANGUAGE first (GNU gettext's own list of languages for messages).
    gettext.bindtextdomain(DOMAIN, str(LOCALES))
    gettext.textdomain(DOMAIN)
    os.environ["LANGUAGE"] = LANGUAGES[lang]


def current() -> str:
    return _language


def translator(lang: str):
    """gettext for `lang` whatever the language in use (a CSV's Chinese headers, --headers zh)."""
    return _catalog(lang).gettext


def _catalog(lang: str) -> gettext.NullTranslations:
    if lang == "en":
        return gettext.NullTranslations()  # the messages are English as written
    return gettext.translation(DOMAIN, LOCALES, languages=[LANGUAGES[lang]], fallback=True)


def _(message: str) -> str:
    """`message` in the language in use."""
    return _current.gettext(message) if message else message


def N_(message: str) -> str:
    """Marks `message` for the catalog where it is defined; it is translated where it is shown."""
    return message


# Typer's own words in vip's help and errors: typer looks them up through gettext's global domain
# (i18n.use points it at this catalog), and the help option's text is translated with the rest.
TYPER_WORDS = (N_("Arguments"), N_("Options"), N_("Commands"), N_("required"), N_("default: {default}"),
               N_("env var: {var}"), N_("Missing command."), N_("No such command {name!r}."), N_("Aborted!"),
               N_("(dynamic)"), N_("Show this message and exit."), N_("Usage: "),
               N_("Install completion for the current shell."),
               N_("Show completion for the current shell, to copy it or customize the installation."))

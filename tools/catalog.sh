#!/bin/sh
# The Chinese catalog: extract vipcli's messages (_() and N_()), merge them into
# vipcli/locale/zh_CN/LC_MESSAGES/vipcli.po, compile the .mo that ships in the package.
# Translate the new (empty) entries of the .po between `update` and `compile`. docs/translations.md
set -e
cd "$(dirname "$0")/.."
pybabel extract -F babel.cfg -k N_ --no-location --sort-output --project vipcli --version 0.1 \
    -o vipcli/locale/vipcli.pot .
pybabel update -i vipcli/locale/vipcli.pot -d vipcli/locale -D vipcli -l zh_CN --no-fuzzy-matching \
    --ignore-obsolete --width 100
pybabel compile -d vipcli/locale -D vipcli --statistics

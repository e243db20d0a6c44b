#!/usr/bin/env bash
# Nightly export for cron: yesterday's purchases and the whole member file, with dated names.
# crontab:  15 2 * * *  VIPCLI_DB=/srv/vip/vip.db /srv/vip/nightly-export.sh /srv/vip/exports >>/var/log/vip-export.log 2>&1
# The operator "cron" is a user with the manager role (masked exports, vip check), added once by an hq
# user:  vip user add cron --role manager
# Exit codes are vip's (0 ok, 4 database busy or damaged): cron mails on failure.
set -euo pipefail
out="${1:?usage: nightly-export.sh OUT_DIR}"
day="$(date -d yesterday +%F)"
today="$(date +%F)"
mkdir -p "$out"
vip --operator cron export purchases --format csv --since "$day" --until "$today" --out "$out/purchases-$day.csv"
vip --operator cron export members --format xlsx --out "$out/members-$today.xlsx"
vip --operator cron check >/dev/null
# Weekly, SQLite's own page and index checks too (they read the whole file):
if [ "$(date +%u)" = 7 ]; then vip --operator cron check --full >/dev/null; fi

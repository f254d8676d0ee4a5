#!/usr/bin/env sh
# Programs of the machine's own that the tests use: Debian's Chromium for the browser tests
# (Playwright never downloads one) and PgBouncer for the transaction-pooling test. As root on
# Debian or Ubuntu, install what is missing; otherwise say what to install.
set -eu
missing=""
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
    missing="$missing chromium"
fi
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
    missing="$missing pgbouncer"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing what the tests need (apt-get install$missing) ..."
    # shellcheck disable=SC2086 - one word per package
    apt-get install -y -q $missing >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; }
    exit 0
fi
echo "The tests need Debian's or Ubuntu's$missing (sudo apt-get install$missing); for Chromium, CHROMIUM may" >&2
echo "name another binary. Then run make test again." >&2
exit 1

#!/usr/bin/env sh
# The browser tests drive the machine's Chromium; Playwright never downloads one of its own.
# As root on Debian or Ubuntu, install it when missing; otherwise say what to install.
set -eu
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "${CHROMIUM:-}" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Chromium for the browser tests (apt-get install chromium) ..."
    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
    exit 0
fi
echo "The browser tests need Chromium. Install Debian's or Ubuntu's package (sudo apt-get install chromium)," >&2
echo "or set CHROMIUM to a Chromium binary, then run make test again." >&2
exit 1

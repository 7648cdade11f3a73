#!/usr/bin/env bash
# Installs Debian's headless Chromium and its WebDriver for the report's browser test
# (tests/simulator/test_report_browser.py); safe to run repeatedly. Only Debian's packages:
# the test points Selenium at /usr/bin/chromedriver, so nothing is downloaded at test time.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo unknown)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core

echo "installed: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"

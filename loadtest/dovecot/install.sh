#!/usr/bin/env bash
# Installs Dovecot's IMAP server for the IMAP tests and load tests; safe to run repeatedly.
# Only the binaries are needed: the tests run their own unprivileged instance with their own
# config, so the packaged system service is stopped and disabled where systemd is present.
set -euo pipefail

if command -v dovecot >/dev/null 2>&1; then
    echo "dovecot already installed: $(dovecot --version)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101 stops the package from starting the system-wide service on install.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    created_policy=1
fi
cleanup() {
    if [ "$created_policy" -eq 1 ]; then
        $SUDO rm -f "$policy"
    fi
}
trap cleanup EXIT

$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends dovecot-imapd

if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    $SUDO systemctl disable --now dovecot.service >/dev/null 2>&1 || true
fi

echo "installed: $(dovecot --version)"

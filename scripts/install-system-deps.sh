#!/usr/bin/env bash
# Installs the system packages cxprobe's demo and tests use, if any is missing. Idempotent.
#   dovecot-imapd/-lmtpd/-sieve : the sandbox mail desk's real IMAP server and LMTP delivery
#   prometheus (promtool)       : metric linting and rule tests
#   prometheus-alertmanager     : alert routing in the demo
#   chromium                    : the browser the web-chat probe drives (Playwright, never its
#                                 own downloaded browsers)
#   poppler-utils (pdftoppm)    : renders the audit report's PDF pages to images in its tests
#   docker-compose              : `docker-compose config` validates docker-compose.yml offline (no
#                                 Docker engine needed; Debian's v1, without docker.io)
#   postgresql                  : the real PostgreSQL server the store tests run on besides SQLite
#                                 (initdb and postgres in user space, as the package's postgres user)
#   espeak-ng                   : synthesises the sandbox phone line's prompts and agents (Media
#                                 Streams audio, sandbox/twilio/audio.py)
#   flite                       : the same, with voices built from recorded speakers (`flite:`
#                                 voices; the prompt-check benchmark and its tests)
set -euo pipefail

need=()
# By path: /usr/sbin is not on an ordinary user's PATH.
[ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd dovecot-lmtpd dovecot-sieve)
[ -x /usr/lib/dovecot/imap ] || need+=(dovecot-imapd)
[ -x /usr/lib/dovecot/lmtp ] || need+=(dovecot-lmtpd)
[ -e /usr/lib/dovecot/modules/lib90_sieve_plugin.so ] || need+=(dovecot-sieve)
# Debian's own python3 needs python3-venv for `python3 -m venv`.
python3 -c "import ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/lib/chromium/chromium ] || need+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
# By path: the server's binaries are under a versioned directory, never on PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v flite >/dev/null 2>&1 || need+=(flite)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
echo "installing system packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Keep apt from starting the system services; cxprobe runs its own instances in user space.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packages enable their system services (listening on every interface after a reboot, and
# on the ports the demo uses). cxprobe needs none of them: disable those this script installed.
services=()
for package in "${need[@]}"; do
  case "$package" in
    dovecot-imapd) services+=(dovecot) ;;
    prometheus) services+=(prometheus) ;;
    prometheus-alertmanager) services+=(prometheus-alertmanager) ;;
    # The package's cluster would listen on 5432 after a reboot; the tests start their own.
    postgresql) services+=(postgresql) ;;
  esac
done
if command -v systemctl >/dev/null 2>&1; then
  for service in "${services[@]}"; do
    $SUDO systemctl disable "$service" >/dev/null 2>&1 || true
  done
fi
echo "system packages ready"

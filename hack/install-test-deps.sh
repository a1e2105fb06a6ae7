#!/usr/bin/env bash
# install-test-deps.sh installs what `make test` and `make bench` need, only where it is missing:
#   - Debian packages: swaks (SMTP client, with Net::SSLeay and Authen::SASL for STARTTLS and
#     AUTH), isync (mbsync, IMAP sync), postfix (smtp-source for the benchmark and the
#     throwaway Postfix it compares against), opendkim (the bench's signing Postfix),
#     dovecot-imapd (the Dovecot migration test; never started as a service).
#   - python3 (stdlib only: smtplib, imaplib) must already be on the machine.
# Postfix is installed with debconf preseeded to "No configuration" and with service starts
# refused by policy-rc.d, so it neither starts nor configures the host's /etc/postfix. Running it
# twice does nothing the second time. Needs root (CI and the dev machines run as root).
set -euo pipefail

# binary -> Debian package that ships it
declare -A want=(
  [swaks]=swaks
  [mbsync]=isync
  [smtp-source]=postfix
  [opendkim]=opendkim # make bench: Postfix signing through OpenDKIM, the same work kubemail does
  [dovecot]=dovecot-imapd # make test: a real Dovecot writes the Maildir kubemail then serves with its UIDs
)

missing=()
for bin in "${!want[@]}"; do
  if ! command -v "$bin" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$bin" ]]; then
    missing+=("${want[$bin]}")
  fi
done

if ! command -v python3 >/dev/null 2>&1; then
  missing+=(python3)
fi

# Perl modules swaks needs for STARTTLS and AUTH (Debian only recommends them).
declare -A perl_want=(
  [Net::SSLeay]=libnet-ssleay-perl
  [Authen::SASL]=libauthen-sasl-perl
)
for mod in "${!perl_want[@]}"; do
  if ! perl -M"$mod" -e 1 >/dev/null 2>&1; then
    missing+=("${perl_want[$mod]}")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-test-deps: all test dependencies present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-test-deps: missing packages ${missing[*]}; run as root or install them by hand" >&2
  exit 1
fi

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# Postfix: no configuration, no start (the bench runs its own instance from a temp config dir).
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections

# Refuse service starts during the install unless the machine already does (Docker-style images).
added_policy=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  added_policy=1
fi
cleanup() { if [[ -n "$added_policy" ]]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

apt-get update -q -o DPkg::Lock::Timeout=300
apt-get install "${apt_opts[@]}" --no-install-recommends "${missing[@]}"

# Make sure no system Postfix was left running by the package scripts.
if pgrep -x master >/dev/null 2>&1 && [[ -f /etc/postfix/main.cf ]]; then
  postfix stop >/dev/null 2>&1 || true
fi
echo "install-test-deps: done"

#!/usr/bin/env bash
# install-deps.sh - installs every Debian 12 package that building coverd, running its
# tests and running the demo need. Both README commands call it, so a fresh machine needs
# nothing done by hand. It is idempotent: when every package is already installed it
# touches nothing (no apt-get update, no network), so calling it on every run is cheap.
#
# Runs as root, or through sudo when run as another user. Environment:
#   COVERD_KEEP_SERVICES=1  leave the system gpsd and mosquitto services as the packages
#                           set them up (by default they are stopped and disabled, see below).
set -eu

PACKAGES=(
	# Build.
	build-essential cmake pkg-config
	libsqlite3-dev libgps-dev libmosquitto-dev libmbedtls-dev libcjson-dev libinih-dev
	# sync/ verifies the broker's TLS certificate through OpenSSL directly, because
	# libmosquitto hides the verification result.
	libssl-dev
	# Tests: unit tests, a real gpsd fed by gpsfake (gpsd-clients ships gpsfake and its
	# python3-gps module), a real mosquitto broker started by each test on a free port,
	# certificates made with openssl, leak checks, and the scripts' helpers.
	libcmocka-dev gpsd gpsd-clients mosquitto mosquitto-clients openssl valgrind
	python3 jq sqlite3 gpsbabel procps
	# The time zone database: the explain tests give local times in Europe/Ljubljana.
	tzdata
)

say() { printf 'install-deps: %s\n' "$*"; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

if [ ! -r /etc/debian_version ] || ! command -v dpkg-query >/dev/null 2>&1; then
	die "this script installs Debian packages; it needs Debian 12 (bookworm) or a derivative"
fi

# Only packages that are not fully installed go to apt, so a second run is a no-op.
missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	if [ "$status" != "installed" ]; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	say "all ${#PACKAGES[@]} packages present"
	exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || die "run as root, or install sudo: need to install ${missing[*]}"
	SUDO=sudo
fi

# Temporary files go to one directory removed on every exit path, including the
# policy-rc.d installed below, so an interrupted run leaves the system as it was.
work=$(mktemp -d)
policy_ours=0
cleanup() {
	if [ "$policy_ours" = 1 ]; then
		$SUDO rm -f /usr/sbin/policy-rc.d
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The gpsd and mosquitto packages start system daemons on ports 2947 and 1883 when they
# are installed. Tests and the demo start their own instances on free ports and need
# neither; in a container without systemd the packages would otherwise start them through
# their init scripts and leave them running. A policy-rc.d that refuses every start is
# the Debian way to stop that (it is honoured by invoke-rc.d and deb-systemd-invoke); an
# existing one is left alone because whoever installed it already decided.
newly_gpsd=0
newly_mosquitto=0
for p in "${missing[@]}"; do
	case "$p" in
		gpsd) newly_gpsd=1 ;;
		mosquitto) newly_mosquitto=1 ;;
	esac
done
if [ "${COVERD_KEEP_SERVICES:-0}" != 1 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\n# Installed by coverd tools/install-deps.sh for the length of one apt run.\nexit 101\n' \
		>"$work/policy-rc.d"
	chmod 0755 "$work/policy-rc.d"
	$SUDO cp "$work/policy-rc.d" /usr/sbin/policy-rc.d
	policy_ours=1
fi

say "installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-q -y -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update >"$work/apt.log" 2>&1; then
	tail -n 20 "$work/apt.log" >&2
	die "apt-get update failed (see above): check the network and /etc/apt/sources.list*"
fi
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install \
		--no-install-recommends "${missing[@]}" >>"$work/apt.log" 2>&1; then
	tail -n 30 "$work/apt.log" >&2
	die "apt-get install failed (see above) for: ${missing[*]}"
fi

# On a machine booted with systemd the units are enabled even though nothing started
# them; disable the ones this run brought in so a reboot does not start them either.
# Services that were installed before this run belong to the machine's owner.
if [ "${COVERD_KEEP_SERVICES:-0}" != 1 ] && [ -d /run/systemd/system ]; then
	units=()
	[ "$newly_gpsd" = 1 ] && units+=(gpsd.socket gpsd.service)
	[ "$newly_mosquitto" = 1 ] && units+=(mosquitto.service)
	if [ ${#units[@]} -gt 0 ]; then
		$SUDO systemctl disable --now "${units[@]}" >/dev/null 2>&1 ||
			say "warning: could not disable ${units[*]}; tests use their own ports, so they are unaffected"
	fi
fi

# Check the result rather than trusting apt's exit code alone.
for p in "${missing[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = "installed" ] || die "package $p is still not installed after apt-get"
done
say "done"

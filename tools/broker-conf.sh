#!/bin/sh
# broker-conf.sh - a local broker configuration made from the shipped fleet configuration.
#
# usage: broker-conf.sh [-d] [-s SERVER_CERT_NAME] PKI_DIR OUT_DIR PORT
#
# Writes OUT_DIR/mosquitto.conf from firmware/mosquitto/coverd-fleet.conf, changing only
# what must be local: the listener (PORT on 127.0.0.1), the CA and server certificate
# (from PKI_DIR as made by tools/pki.sh; -s picks another server certificate such as
# server-expired), the ACL path (the shipped firmware/mosquitto/coverd.acl, unchanged), the
# persistence directory and the log (OUT_DIR/mosquitto.log). Everything else, above all
# require_certificate, use_identity_as_username and allow_anonymous, stays as shipped, and
# the script fails if the shipped file no longer has them. The tests and the demo start
# their broker with `mosquitto -c OUT_DIR/mosquitto.conf`. -d adds debug logging (every
# packet, including denied publishes). Prints the file's path.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
conf="$here/../firmware/mosquitto/coverd-fleet.conf"
acl="$here/../firmware/mosquitto/coverd.acl"
server=server
debug=0
usage() {
	echo "usage: broker-conf.sh [-d] [-s SERVER_CERT_NAME] PKI_DIR OUT_DIR PORT" >&2
	exit 2
}
while getopts ds: opt; do
	case $opt in
	d) debug=1 ;;
	s) server=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 3 ] || usage
pki=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
port=$3
case $port in '' | *[!0-9]*) echo "broker-conf.sh: bad port $port" >&2; exit 2 ;; esac
for f in "$pki/ca.crt" "$pki/$server.crt" "$pki/$server.key" "$conf" "$acl"; do
	[ -r "$f" ] || { echo "broker-conf.sh: cannot read $f" >&2; exit 1; }
done
acl=$(cd "$(dirname "$acl")" && pwd)/$(basename "$acl")
# mosquitto started as root drops to the "mosquitto" user, who could not read keys made
# with mode 0600 by someone else: run it as the caller.
user=""
[ "$(id -u)" -ne 0 ] || user=root

awk -v port="$port" -v pki="$pki" -v out="$out" -v server="$server" -v acl="$acl" \
    -v user="$user" -v debug="$debug" '
BEGIN {
	r["listener"] = "listener " port " 127.0.0.1"
	r["cafile"] = "cafile " pki "/ca.crt"
	r["certfile"] = "certfile " pki "/" server ".crt"
	r["keyfile"] = "keyfile " pki "/" server ".key"
	r["acl_file"] = "acl_file " acl
	r["persistence_location"] = "persistence_location " out "/"
	r["log_dest"] = "log_dest file " out "/mosquitto.log"
	want["require_certificate"] = "true"
	want["use_identity_as_username"] = "true"
	want["allow_anonymous"] = "false"
}
/^[ \t]*#/ || NF == 0 { print; next }
{
	if ($1 in want) got[$1] = $2
	if ($1 in r) {
		if (seen[$1]++) { print "broker-conf.sh: " $1 " appears twice" > "/dev/stderr"; bad = 1 }
		print r[$1]
		next
	}
	print
}
END {
	for (k in r) if (!(k in seen)) { print "broker-conf.sh: shipped config lacks " k > "/dev/stderr"; bad = 1 }
	for (k in want) if (got[k] != want[k]) { print "broker-conf.sh: shipped config must set " k " " want[k] > "/dev/stderr"; bad = 1 }
	if (user != "") print "user " user
	if (debug) print "log_type debug"
	exit bad
}' "$conf" >"$out/mosquitto.conf.tmp"
mv "$out/mosquitto.conf.tmp" "$out/mosquitto.conf"
echo "$out/mosquitto.conf"

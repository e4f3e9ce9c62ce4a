#!/bin/sh
# pki.sh - a small PKI for coverd fleets, tests and the demo, made with openssl.
#
# usage: pki.sh [-n SERVER_NAME]... DIR [DEVICE_ID]...
#
# Creates in DIR, skipping files that already exist so the script can be run again to add
# devices:
#   ca.crt ca.key                     the fleet CA (EC P-256)
#   server.crt server.key             broker certificate, CN=localhost, SAN DNS:localhost,
#                                     IP:127.0.0.1 plus every -n name (an IP or a DNS name)
#   ingest.crt ingest.key             backend ingest client certificate, CN=ingest
#   dashboard.crt dashboard.key       fleet dashboard client certificate, CN=dashboard
#   device-<ID>.crt device-<ID>.key   one client certificate per device, CN=<ID>
# and, for tests that must see a bad broker refused:
#   other-ca.crt other-ca.key         an unrelated CA
#   server-wrongca.crt/.key           a localhost server certificate from the unrelated CA
#   server-expired.crt/.key           a localhost server certificate valid only in 2020
#   server-badhost.crt/.key           a server certificate for wrong.example only
#
# Private keys are written with umask 077 (mode 0600). The broker maps a client
# certificate's CN to its MQTT username (use_identity_as_username), and the ACL gives each
# username exactly its own topics, so a device id must never be "ingest" or any other
# service identity. This is a development and test PKI: a production fleet keeps its CA
# key offline and signs device CSRs made on the device.
set -eu

usage() {
	echo "usage: pki.sh [-n SERVER_NAME]... DIR [DEVICE_ID]..." >&2
	exit 2
}

names=""
while getopts n: opt; do
	case $opt in
	n) names="$names $OPTARG" ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
dir=$1
shift

command -v openssl >/dev/null 2>&1 || { echo "pki.sh: openssl not found" >&2; exit 1; }
umask 077
mkdir -p "$dir"
cd "$dir"

# Device ids become MQTT topic levels and certificate CNs: keep them to a safe alphabet.
for id in "$@"; do
	case $id in
	'' | *[!A-Za-z0-9._-]*) echo "pki.sh: bad device id '$id' (allowed: A-Z a-z 0-9 . _ -)" >&2; exit 2 ;;
	ingest | dashboard) echo "pki.sh: '$id' is a service identity, not a device id" >&2; exit 2 ;;
	esac
	if [ ${#id} -gt 47 ]; then
		echo "pki.sh: device id '$id' is longer than 47 characters" >&2
		exit 2
	fi
done

newkey() {
	[ -f "$1" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# mkca NAME CN
mkca() {
	if [ ! -f "$1.crt" ]; then
		newkey "$1.key"
		openssl req -new -x509 -key "$1.key" -out "$1.crt" -days 3650 -subj "/CN=$2" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" \
			-addext "subjectKeyIdentifier=hash"
	fi
}

# sign CA NAME CN EKU SAN|"" : a leaf certificate valid for ten years.
sign() {
	if [ ! -f "$2.crt" ]; then
		newkey "$2.key"
		openssl req -new -key "$2.key" -subj "/CN=$3" -out "$2.csr"
		{
			echo "basicConstraints=critical,CA:FALSE"
			echo "keyUsage=critical,digitalSignature,keyAgreement"
			echo "extendedKeyUsage=$4"
			[ -z "$5" ] || echo "subjectAltName=$5"
		} >"$2.ext"
		openssl x509 -req -in "$2.csr" -CA "$1.crt" -CAkey "$1.key" -CAcreateserial \
			-days 3650 -sha256 -extfile "$2.ext" -out "$2.crt" 2>/dev/null
		rm -f "$2.csr" "$2.ext"
	fi
}

san="DNS:localhost,IP:127.0.0.1"
for n in $names; do
	case $n in
	*[!0-9.]*) san="$san,DNS:$n" ;;
	*) san="$san,IP:$n" ;;
	esac
done

mkca ca "coverd fleet CA"
sign ca server localhost serverAuth "$san"
sign ca ingest ingest clientAuth ""
sign ca dashboard dashboard clientAuth ""
for id in "$@"; do
	sign ca "device-$id" "$id" clientAuth ""
done

# Negative cases for tests: a server certificate from another CA, one that expired, and
# one for another host name.
mkca other-ca "unrelated CA"
sign other-ca server-wrongca localhost serverAuth "DNS:localhost,IP:127.0.0.1"
sign ca server-badhost wrong.example serverAuth "DNS:wrong.example"

# OpenSSL 3.0's x509 command cannot set a start date in the past, so the expired
# certificate is issued with `openssl ca`, whose -startdate and -enddate take any dates.
if [ ! -f server-expired.crt ]; then
	newkey server-expired.key
	openssl req -new -key server-expired.key -subj "/CN=localhost" -out server-expired.csr
	rm -rf expired-ca && mkdir expired-ca
	: >expired-ca/index.txt
	echo 1000 >expired-ca/serial
	cat >expired-ca/ca.cnf <<CNF
[ ca ]
default_ca = exp
[ exp ]
dir = expired-ca
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = ca.crt
private_key = ca.key
default_md = sha256
policy = any
unique_subject = no
x509_extensions = ext
[ any ]
commonName = supplied
[ ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
CNF
	openssl ca -batch -notext -config expired-ca/ca.cnf -in server-expired.csr \
		-startdate 20200101000000Z -enddate 20200102000000Z -out server-expired.crt 2>/dev/null
	rm -rf expired-ca server-expired.csr
fi
# Certificates are public; keys stay 0600.
chmod 644 ./*.crt

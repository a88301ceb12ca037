#!/bin/sh
# Test-only TLS material for the MLflow client's TLS tests: a CA and a server certificate for 127.0.0.1,
# valid for 100 years. Not secret (they only ever guard a test server on localhost).
set -eu
out="$(dirname "$0")/fixtures/tls"
mkdir -p "$out"
cd "$out"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 36500 -subj "/CN=milkit test CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server.pem -days 36500 -extfile ext.cnf 2>/dev/null
rm -f server.csr ext.cnf ca.srl ca-key.pem
ls -l

#!/bin/sh
# Entrypoint of the bulkhead/postgres image (PostgreSQL 15 from Debian's
# packages): initdb on the first start, with the superuser password from
# $POSTGRES_PASSWORD_FILE, then postgres in the foreground.
set -eu
: "${PGDATA:?PGDATA must name the data directory}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	: "${POSTGRES_PASSWORD_FILE:?POSTGRES_PASSWORD_FILE must name the superuser password file}"
	echo "entrypoint: initdb $PGDATA"
	initdb -D "$PGDATA" -U postgres --pwfile="$POSTGRES_PASSWORD_FILE" --auth=scram-sha-256 \
		--encoding=UTF8 --locale=C --no-instructions
	# Clients come from other pods: password authentication from anywhere.
	echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql -c max_connections=200 "$@"

#!/usr/bin/env bash
# Upstream postgres image's entrypoint, trimmed to what docker-compose.yml uses (no
# /docker-entrypoint-initdb.d, POSTGRES_INITDB_ARGS or POSTGRES_HOST_AUTH_METHOD), with
# setpriv (util-linux) in place of gosu.
set -Eeo pipefail

# first arg is `-f` or `--some-option`: run postgres with them
if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" != 'postgres' ]; then
	exec "$@"
fi

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export POSTGRES_USER POSTGRES_DB

# started as root: create and hand over the directories, then run again as postgres
mkdir -p "$PGDATA"
chmod 00700 "$PGDATA" 2>/dev/null || :
mkdir -p /var/run/postgresql
chmod 03775 /var/run/postgresql 2>/dev/null || :
if [ "$(id -u)" = '0' ]; then
	find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
	find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ -s "$PGDATA/PG_VERSION" ]; then
	echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
	exec "$@"
fi

if [ -z "${POSTGRES_PASSWORD:-}" ]; then
	cat >&2 <<-'EOM'
		Error: Database is uninitialized and superuser password is not specified.
		       You must specify POSTGRES_PASSWORD to a non-empty value for the
		       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
	EOM
	exit 1
fi

# the superuser and its password (from a pipe, never on a command line)
initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD")

# TCP from anywhere with the password, in the server's password_encryption (scram-sha-256);
# initdb's own lines (trust on the local socket and loopback) stay, as upstream
printf '\nhost all all all %s\n' "$(postgres -C password_encryption)" >> "$PGDATA/pg_hba.conf"

# a server on the socket only, to create the database
pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
if [ "$POSTGRES_DB" != 'postgres' ]; then
	exists="$(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc \
		--dbname postgres --set db="$POSTGRES_DB" --tuples-only --no-align \
		<<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
	if [ -z "$exists" ]; then
		psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc \
			--dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
	fi
fi
pg_ctl -D "$PGDATA" -m fast -w stop

echo
echo 'PostgreSQL init process complete; ready for start up.'
echo
exec "$@"

#!/bin/sh
# docker-entrypoint.sh: the example database image's entrypoint, a small
# subset of the official postgres image's, with the same variables:
#
#   POSTGRES_PASSWORD  the superuser's password (required on first start)
#   POSTGRES_USER      the superuser (default postgres)
#   POSTGRES_DB        a database to create (default: POSTGRES_USER's name)
#   PGDATA             the cluster's directory (default /var/lib/postgresql/data)
#
# On the first start (an empty PGDATA) it runs initdb, lets every address
# in with a password (scram-sha-256; the socket inside the container is
# trusted), runs /docker-entrypoint-initdb.d/*.sql (and *.sh) against
# POSTGRES_DB on a server that listens only on a private socket (so
# pg_isready and clients see nothing until the seed is in), stops it, and
# then, every time, execs the command: postgres, in the foreground as PID 1,
# so that docker stop's signal reaches it (the image's stop signal is
# SIGINT: fast shutdown, which does not wait for clients to leave).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA
me=docker-entrypoint.sh

# Options alone (docker run IMAGE -c work_mem=8MB) are postgres's.
if [ "${1#-}" != "${1:-}" ]; then
	set -- postgres "$@"
fi
if [ "${1:-}" != postgres ]; then
	exec "$@"
fi

# Started as root (docker run -u 0, or a data directory from the host):
# own the directories, then run as postgres.
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /run/postgresql
	chown postgres:postgres "$PGDATA" /run/postgresql
	chmod 0700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "$me: the database is not initialised and POSTGRES_PASSWORD is empty: set it" >&2
		exit 1
	fi
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 \
		--encoding=UTF8 --locale=C.UTF-8 >/dev/null
	rm -f "$pwfile"
	printf '\n# Any address, with a password.\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

	sock=$(mktemp -d)
	pg_ctl --silent --wait --options="-c listen_addresses='' -c unix_socket_directories=$sock" start
	psql() { command psql -X -q -v ON_ERROR_STOP=1 --host="$sock" --username="$POSTGRES_USER" "$@"; }
	if [ "$POSTGRES_DB" != postgres ]; then
		psql --dbname=postgres --set=db="$POSTGRES_DB" <<-'SQL'
			CREATE DATABASE :"db";
		SQL
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sql)
			echo "$me: running $f"
			psql --dbname="$POSTGRES_DB" --file="$f"
			;;
		*.sh)
			echo "$me: running $f"
			PGHOST=$sock PGUSER=$POSTGRES_USER PGDATABASE=$POSTGRES_DB sh "$f"
			;;
		*) [ -e "$f" ] && echo "$me: ignoring $f" ;;
		esac
	done
	pg_ctl --silent --wait --mode=fast stop
	rmdir "$sock"
	echo "$me: initialised $PGDATA (database $POSTGRES_DB)"
fi

exec "$@"

#!/usr/bin/env bash
# Installs the distro packages Bulkhead needs on a Debian/Ubuntu machine:
# redis-server, and PostgreSQL (server binaries initdb/pg_ctl/postgres) when
# they are absent. Idempotent: it installs only what is missing, and says so.
# Without root it prints the exact command to run instead.
set -euo pipefail

missing=()

have_postgres() {
	command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
	compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
have_postgres || missing+=(postgresql)

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: redis-server and PostgreSQL present"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: missing ${missing[*]} and this is not a Debian-like system (no apt-get)." >&2
	echo "deps: install them with your package manager, then run the command again." >&2
	exit 1
fi

cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		cmd=(sudo "${cmd[@]}")
		update=(sudo apt-get update)
	else
		echo "deps: missing ${missing[*]}; run as root:" >&2
		echo "    apt-get update && ${cmd[*]}" >&2
		exit 1
	fi
else
	update=(apt-get update)
fi

echo "deps: installing ${missing[*]} from the distro archive"
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { "${update[@]}" -qq && "${cmd[@]}" -qq; } >"$log" 2>&1; then
	cat "$log" >&2
	echo "deps: installing ${missing[*]} failed (output above)" >&2
	exit 1
fi
rm -f "$log"
# The Debian packages start system-wide services; Bulkhead runs its own
# throwaway instances on free ports, so stop the package's ones if they came up.
for svc in redis-server postgresql; do
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
		systemctl stop "$svc" || true
	fi
done
echo "deps: installed ${missing[*]} in $(( $(date +%s) - start ))s"

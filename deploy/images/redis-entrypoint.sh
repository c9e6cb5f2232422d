#!/bin/sh
# Entrypoint of the bulkhead/redis image (Redis 7 from Debian's packages):
# the ACL file on the data volume is Redis's own (ACL SAVE writes it); the
# first start copies it from $REDIS_INITIAL_ACL (the default user's
# password).
set -eu
if [ ! -s /data/users.acl ]; then
	: "${REDIS_INITIAL_ACL:?REDIS_INITIAL_ACL must name the initial ACL file}"
	cat "$REDIS_INITIAL_ACL" >/data/users.acl
	echo "entrypoint: /data/users.acl from $REDIS_INITIAL_ACL"
fi
exec redis-server --port 6379 --dir /data --aclfile /data/users.acl --protected-mode no "$@"

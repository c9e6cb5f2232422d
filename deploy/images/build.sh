#!/usr/bin/env bash
# Builds the platform's container images as tarballs, with no registry and no
# network (tools/images writes them), into .bulkhead/images/:
#
#   deploy/images/build.sh            every image
#   deploy/images/build.sh users api  only these
#
# One image per binary: the platform's own (static Go, an empty base) and the
# third-party servers the local cluster runs, made from this machine's Debian
# packages and pinned builds (PostgreSQL, Redis, Vault, envoyproxy/ratelimit,
# CoreDNS) with the shared libraries they link. Every image runs as the
# non-root user 65532. The tag is the git revision (with -dirty when the
# tree has changes, and a digest of them); .bulkhead/images/TAG names it for
# the deploy step.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/bin"
out="$root/.bulkhead/images"
static="$root/bin/static"
mkdir -p "$out" "$static"

rev=$(git -C "$root" rev-parse --short=12 HEAD)
# Uncommitted changes: -dirty and a digest of them, so that each state of
# the tree has its own tag.
if [ -n "$(git -C "$root" status --porcelain)" ]; then
	rev="$rev-dirty-$( { git -C "$root" diff HEAD; git -C "$root" ls-files --others --exclude-standard | sort | xargs -r -I{} sh -c 'cat "$1" 2>/dev/null' _ "$root/{}"; } | sha256sum | cut -c1-8)"
fi

say() { echo "images: $*"; }

"$root/tools/build.sh" images vault ratelimit coredns >/dev/null

# Static builds of the platform's binaries (no cgo: nothing to link).
declare -A pkgs=(
	[control-plane]=./control-plane/cmd/control-plane
	[agent]=./cmd/bulkhead-agent
	[kafka-broker]=./cmd/kafka-broker
	[auth]=./services/auth/cmd/bulkhead-auth
	[users]=./services/users/cmd/bulkhead-users
	[models]=./services/models/cmd/bulkhead-models
	[chat]=./services/chat/cmd/bulkhead-chat
	[inference]=./services/inference/cmd/bulkhead-inference
	[training]=./services/training/cmd/bulkhead-training
	[webhooks]=./services/webhooks/cmd/bulkhead-webhooks
	[api]=./services/api/cmd/bulkhead-api
)
third_party=(postgres redis vault ratelimit coredns)

wanted=("$@")
if [ ${#wanted[@]} -eq 0 ]; then wanted=("${!pkgs[@]}" "${third_party[@]}"); fi
for w in "${wanted[@]}"; do
	[ -n "${pkgs[$w]:-}" ] || [[ " ${third_party[*]} " == *" $w "* ]] || { echo "images: unknown image '$w'; known: ${!pkgs[*]} ${third_party[*]}" >&2; exit 2; }
done

go_images=()
for w in "${wanted[@]}"; do [ -n "${pkgs[$w]:-}" ] && go_images+=("$w"); done
if [ ${#go_images[@]} -gt 0 ]; then
	say "go build (static, CGO_ENABLED=0): ${go_images[*]}"
	start=$(date +%s)
	targets=()
	for w in "${go_images[@]}"; do targets+=("${pkgs[$w]}"); done
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$static/" "${targets[@]}")
	say "built in $(( $(date +%s) - start ))s"
fi

image() { "$bin/images" "$@"; }

for w in "${wanted[@]}"; do
	ref="bulkhead/$w:$rev"
	tar="$out/$w.tar"
	case "$w" in
	control-plane|kafka-broker)
		image -ref "$ref" -o "$tar" -file "$static/$w:/$w:0755" -entrypoint "/$w" ;;
	agent)
		image -ref "$ref" -o "$tar" -file "$static/bulkhead-agent:/bulkhead-agent:0755" -entrypoint /bulkhead-agent ;;
	auth|users|models|chat|inference|training|webhooks|api)
		image -ref "$ref" -o "$tar" -file "$static/bulkhead-$w:/bulkhead-$w:0755" -entrypoint "/bulkhead-$w" ;;
	postgres)
		# PostgreSQL from the distribution's package (15 on Debian 12), dash
		# for the entrypoint.
		pg=$(ls -d /usr/lib/postgresql/*/ 2>/dev/null | sort -V | tail -1); pg=${pg%/}
		[ -n "$pg" ] && [ -x "$pg/bin/postgres" ] || { echo "images: no /usr/lib/postgresql/*/bin/postgres: make deps installs PostgreSQL" >&2; exit 1; }
		pgshare=/usr/share/postgresql/$(basename "$pg")
		image -ref "$ref" -o "$tar" -user-name postgres -home /var/lib/postgresql \
			-file "$pg:$pg" -file "$pgshare:$pgshare" \
			-file /usr/share/zoneinfo/UTC:/usr/share/zoneinfo/UTC -file /usr/share/zoneinfo/Etc/UTC:/usr/share/zoneinfo/Etc/UTC \
			-file /usr/bin/dash:/bin/sh -libs /bin/sh \
			-file "$root/deploy/images/postgres-entrypoint.sh:/usr/local/bin/entrypoint:0755" \
			-libs "$pg/bin/postgres" -libs "$pg/bin/initdb" -libs "$pg/bin/pg_isready" \
			-env PGTZ=UTC -env TZ=UTC -env "PATH=$pg/bin:/usr/bin:/bin" \
			-entrypoint "/usr/local/bin/entrypoint" ;;
	redis)
		# Redis 7 from Debian's redis-server, dash and cat for the entrypoint.
		image -ref "$ref" -o "$tar" -file /usr/bin/redis-server:/usr/bin/redis-server:0755 -libs /usr/bin/redis-server \
			-file /usr/bin/redis-cli:/usr/bin/redis-cli:0755 -libs /usr/bin/redis-cli \
			-file /usr/bin/dash:/bin/sh -libs /bin/sh -file /usr/bin/cat:/usr/bin/cat -libs /usr/bin/cat \
			-file "$root/deploy/images/redis-entrypoint.sh:/usr/local/bin/entrypoint:0755" \
			-entrypoint /usr/local/bin/entrypoint ;;
	vault|ratelimit|coredns)
		image -ref "$ref" -o "$tar" -file "$bin/$w:/usr/bin/$w:0755" -libs "/usr/bin/$w" -entrypoint "/usr/bin/$w" ;;
	*)
		echo "images: no recipe for image '$w' (add it to the case above)" >&2; exit 1 ;;
	esac
done
echo "$rev" >"$out/TAG"
say "tag $rev (in $out/TAG)"

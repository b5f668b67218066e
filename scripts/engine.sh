# engine.sh, sourced: a private Docker engine inside a network namespace,
# as internal/dockertest starts one for the Go tests. Its data root, exec
# root, socket, containerd namespace and cgroup parent are its own, so it
# touches neither the host's engine nor its network. As root.
#
#   engine_start NS DIR  start dockerd in namespace NS with its state under
#                        DIR (keep DIR short: socket paths are limited to
#                        108 bytes), export DOCKER_HOST, and wait up to 30 s
#                        until it answers (else print its log, return 1)
#   engine_stop DIR      remove its containers, stop it, its containerd and
#                        shims, remove its cgroups, and /etc/docker/key.json
#                        if it wrote that (dockerd 20.10 does, whatever
#                        --data-root says). Safe to call when start failed.
#
# The client is $DOCKER (default: docker).

engine_start() {
	_id=$(basename "$2")
	export DOCKER_HOST="unix://$2/docker.sock"
	[ -e /etc/docker/key.json ] || : >"$2/.remove-keyjson"
	echo '{}' >"$2/daemon.json"
	# `ip netns exec` remounts /sys, which hides the cgroup hierarchies
	# dockerd needs: mount them again inside.
	_mounts=$(awk '$2 ~ "^/sys/fs/cgroup" {printf "mkdir -p %s && mount -t %s -o %s %s %s\n", $2, $3, $4, $1, $2}' /proc/self/mounts)
	setsid ip netns exec "$1" sh -ec "$_mounts
exec dockerd --host $DOCKER_HOST --data-root $2/data --exec-root $2/exec --pidfile $2/docker.pid \
	--config-file $2/daemon.json --containerd-namespace $_id --containerd-plugins-namespace $_id-plugins \
	--cgroup-parent /$_id --userland-proxy=false --bridge none --log-level warn" >"$2/dockerd.log" 2>&1 </dev/null &
	echo $! >"$2/dockerd.pid"
	for _i in $(seq 300); do
		"${DOCKER:-docker}" version >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	cat "$2/dockerd.log" >&2
	return 1
}

engine_stop() {
	if [ -f "$1/dockerd.pid" ]; then
		# Containers first: else dockerd waits for each to stop.
		_cs=$("${DOCKER:-docker}" ps -aq 2>/dev/null)
		# shellcheck disable=SC2086 # one word an id
		[ -n "$_cs" ] && "${DOCKER:-docker}" rm -f $_cs >/dev/null 2>&1
		_pid=$(cat "$1/dockerd.pid")
		_pgid=$(ps -o pgid= -p "$_pid" | tr -d ' ')
		kill "$_pid" 2>/dev/null
		for _i in $(seq 200); do
			kill -0 "$_pid" 2>/dev/null || break
			sleep 0.1
		done
		[ -n "$_pgid" ] && kill -9 -- "-$_pgid" 2>/dev/null # containerd and shims, in its group
	fi
	_id=$(basename "$1")
	for _d in /sys/fs/cgroup/*/"$_id" /sys/fs/cgroup/"$_id"; do
		[ -d "$_d" ] && find "$_d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	[ -e "$1/.remove-keyjson" ] && rm -f /etc/docker/key.json
	return 0
}

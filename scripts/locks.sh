# Sourced by scripts that run the plugins: the plugins keep lock files in
# /run/flatcni; locks_note records what is there, locks_cleanup removes what
# was added since, unless another run may be using it: a lock file someone
# holds, a ports claims index (ports-index.<backend>.<dev>-<inode>) of a
# network namespace that still exists; and the directory itself, empty,
# when the run made it.
flatcni_locks=/run/flatcni
locks_note() {
	flatcni_locks_before=$(ls "$flatcni_locks" 2>/dev/null || true)
	flatcni_locks_existed=$([ -e "$flatcni_locks" ] && echo yes || true)
}
locks_cleanup() {
	local f p live
	# (stat fails for processes gone meanwhile: the callers run with -e and
	# pipefail.)
	live=$({ stat -L -c '%d-%i' /proc/[0-9]*/ns/net /run/netns/* 2>/dev/null || true; } | sort -u)
	for f in $(ls "$flatcni_locks" 2>/dev/null); do
		grep -qxF "$f" <<<"$flatcni_locks_before" && continue
		p="${flatcni_locks:?}/$f"
		if [ -d "$p" ] && ! [ -L "$p" ]; then
			grep -qxF "${f##*.}" <<<"$live" || rm -rf -- "$p"
		elif [ -f "$p" ] && ! [ -L "$p" ]; then
			flock -n "$p" rm -f -- "$p" 2>/dev/null || true
		fi
	done
	[ -n "$flatcni_locks_existed" ] || rmdir "$flatcni_locks" 2>/dev/null || true
	return 0
}

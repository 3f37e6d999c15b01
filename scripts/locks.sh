# Sourced by scripts that run the plugins: the plugins keep lock files in
# /run/flatcni; locks_note records what is there, locks_cleanup removes
# whatever was added since (files, and the ports claims index directories).
flatcni_locks=/run/flatcni
locks_note() { flatcni_locks_before=$(ls "$flatcni_locks" 2>/dev/null || true); }
locks_cleanup() {
	local f
	for f in $(ls "$flatcni_locks" 2>/dev/null); do
		grep -qxF "$f" <<<"$flatcni_locks_before" || rm -rf -- "${flatcni_locks:?}/$f"
	done
}

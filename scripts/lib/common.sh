# Shared helpers for scripts/*. Source it: . "$(dirname "$0")/../lib/common.sh"
# shellcheck shell=bash

HELMDECK_CACHE="${HELMDECK_CACHE:-$HOME/.cache/helmdeck}"
HELMDECK_RUN="$HELMDECK_CACHE/run"
HELMDECK_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$HELMDECK_RUN"

# say TAG message...: one line of progress on stderr-free stdout
say() { local tag=$1; shift; echo "[$tag] $*"; }
die() { echo "error: $*" >&2; exit 1; }

# apt_install pkg...: install Debian packages that are missing (apt-get update once).
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  (( ${#missing[@]} )) || return 0
  say apt "installing ${missing[*]}"
  if [[ ! -f "$HELMDECK_RUN/apt-updated" ]] || [[ -n "$(find "$HELMDECK_RUN/apt-updated" -mmin +720)" ]]; then
    apt-get update -qq && touch "$HELMDECK_RUN/apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# wait_for SECONDS DESCRIPTION command...: poll until the command succeeds.
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || { echo "timed out after ${secs}s waiting for $what" >&2; return 1; }
    sleep 0.5
  done
}

# pid_alive FILE: the pid recorded in FILE is a running process
pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# one_at_a_time NAME: hold an exclusive lock under the cache until this script exits, so two
# runs of one step (CI's prepare and a test session's fixture, or two checkouts) take turns
# instead of writing the same cache files at once (two debootstraps sharing a --cache-dir
# break each other). Only for scripts that start no long-lived process: a child keeps the
# lock's file descriptor open.
one_at_a_time() {
  mkdir -p "$HELMDECK_CACHE/locks"
  exec {HELMDECK_LOCK_FD}>>"$HELMDECK_CACHE/locks/$1.lock"
  if ! flock -n "$HELMDECK_LOCK_FD"; then
    say "$1" "waiting for another run of $1 to finish"
    flock "$HELMDECK_LOCK_FD"
  fi
}

# Sourced by the experiment drivers: carry campaigns' response caches across machines as
# committed replies files (`metasearch cache export/import`). runs/ does not survive a lost
# machine; with these, a driver on a fresh one replays every saved reply (no model call, no
# budget, the same records) and goes on from there.
#   replies_load OUT REPLIES   import REPLIES/<name>/*.jsonl.gz into OUT/<name>, for each name
#   replies_save REPLIES DIR...  for each campaign directory DIR, one new file
#                              REPLIES/<its name>/<time>.jsonl.gz holding what its cache has
#                              that no earlier file there has (no file when nothing is new)
# A campaign directory may keep its own replies in cache.before-test/ (a cache swapped for
# another's before a replayed test): that one is saved instead.
#   replies_autosave REPLIES 'GLOB'   replies_save every SAVE_EVERY seconds (default 900) in the
#                              background until the calling script exits, so a session that
#                              ends without warning leaves its replies on disk, ready to commit
# MS must name the metasearch command.

replies_load() {
  local out=$1 replies=$2 dir
  for dir in "$replies"/*/; do
    [ -d "$dir" ] || continue
    compgen -G "$dir*.jsonl.gz" > /dev/null || continue
    "$MS" cache import "$out/$(basename "$dir")" "$dir" --continue-spend || return 1
  done
}

replies_save() {
  local replies=$1 dir name src file; shift
  for dir in "$@"; do
    dir=${dir%/}; name=$(basename "$dir"); src=$dir
    [ -d "$dir/cache/responses" ] || [ -d "$dir/cache.before-test" ] || continue
    [ -d "$dir/cache.before-test" ] && src=$dir/cache.before-test
    mkdir -p "$replies/$name"
    file="$replies/$name/$(date -u +%Y%m%dT%H%M%S).jsonl.gz"
    "$MS" cache export "$src" "$file" --skip "$replies/$name" || return 1
    [ "$(zcat "$file" | wc -l)" -gt 1 ] || rm -f "$file"  # nothing new: no file
  done
}

replies_autosave() {  # the pattern is expanded at every save: campaigns started later count
  local replies=$1 pattern=$2
  # shellcheck disable=SC2086
  ( while sleep "${SAVE_EVERY:-900}"; do replies_save "$replies" $pattern; done ) &
  trap "kill $! 2>/dev/null" EXIT
}

# Sourced by the experiment drivers: carry campaigns' response caches across machines as
# committed replies files (`metasearch cache export/import`). runs/ does not survive a lost
# machine; with these, a driver on a fresh one replays every saved reply (no model call, no
# budget, the same records) and goes on from there.
#   replies_load OUT REPLIES [BASE NAME...]   import REPLIES/<name>/*.jsonl.gz into OUT/<name>,
#                              for each name, with --continue-spend: each campaign's own paid
#                              replies are billed again as it replays them, so it takes the
#                              same budget decisions as the original run. BASE's files go first;
#                              each NAME (a campaign the driver starts from a copy of BASE's
#                              cache) that has no directory yet gets that copy before its own
#                              files, as the driver gave it, so that those replies stay free
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
  local out=$1 replies=$2 base=${3:-} dir name; shift 2; [ $# -gt 0 ] && shift
  if [ -n "$base" ] && compgen -G "$replies/$base/*.jsonl.gz" > /dev/null; then
    "$MS" cache import "$out/$base" "$replies/$base" --continue-spend || return 1
  fi
  for name in "$@"; do
    if [ ! -d "$out/$name" ] && compgen -G "$replies/$name/*.jsonl.gz" > /dev/null; then
      mkdir -p "$out/$name" && cp -r "$out/$base/cache" "$out/$name/cache" || return 1
    fi
  done
  for dir in "$replies"/*/; do
    [ -d "$dir" ] || continue
    name=$(basename "$dir")
    [ "$name" = "$base" ] && continue
    compgen -G "$dir*.jsonl.gz" > /dev/null || continue
    "$MS" cache import "$out/$name" "$dir" --continue-spend || return 1
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

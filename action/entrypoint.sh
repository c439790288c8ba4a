#!/bin/sh
# Entry point of the GitHub container action: turns the action's inputs (INPUT_*
# variables, set by the runner) into image-migrator flags, and applies fail_on_error.
set -u

set -- sync
if [ -n "${INPUT_CONFIG_FILE:-}" ]; then
  set -- "$@" --config "$INPUT_CONFIG_FILE"
else
  [ -n "${INPUT_AUTH_FILE:-}" ] && set -- "$@" --auth "$INPUT_AUTH_FILE"
  [ -n "${INPUT_IMAGES_FILE:-}" ] && set -- "$@" --images "$INPUT_IMAGES_FILE"
fi
[ -n "${INPUT_DEFAULT_REGISTRY:-}" ] && set -- "$@" --default-registry "$INPUT_DEFAULT_REGISTRY"
[ -n "${INPUT_DEFAULT_NAMESPACE:-}" ] && set -- "$@" --default-namespace "$INPUT_DEFAULT_NAMESPACE"
[ -n "${INPUT_PROC:-}" ] && set -- "$@" --proc "$INPUT_PROC"
[ -n "${INPUT_RETRIES:-}" ] && set -- "$@" --retries "$INPUT_RETRIES"
[ -n "${INPUT_REPORT:-}" ] && set -- "$@" --report "$INPUT_REPORT"
[ -n "${INPUT_JUNIT:-}" ] && set -- "$@" --junit "$INPUT_JUNIT"
[ -n "${INPUT_CA_FILE:-}" ] && set -- "$@" --ca-file "$INPUT_CA_FILE"
[ -n "${INPUT_PLATFORM:-}" ] && set -- "$@" --platform "$INPUT_PLATFORM"
[ -n "${INPUT_SHARD:-}" ] && set -- "$@" --shard "$INPUT_SHARD"
[ -n "${INPUT_REGISTRY_CONCURRENCY:-}" ] && set -- "$@" --registry-concurrency "$INPUT_REGISTRY_CONCURRENCY"
[ -n "${INPUT_REQUEST_TIMEOUT:-}" ] && set -- "$@" --request-timeout "$INPUT_REQUEST_TIMEOUT"
[ -n "${INPUT_MIN_SPEED:-}" ] && set -- "$@" --min-speed "$INPUT_MIN_SPEED"
[ -n "${INPUT_MIN_SPEED_WINDOW:-}" ] && set -- "$@" --min-speed-window "$INPUT_MIN_SPEED_WINDOW"
[ -n "${INPUT_LIMIT_RATE:-}" ] && set -- "$@" --limit-rate "$INPUT_LIMIT_RATE"
[ -n "${INPUT_CHUNK_SIZE:-}" ] && set -- "$@" --chunk-size "$INPUT_CHUNK_SIZE"
case "${INPUT_REFERRERS:-false}" in
  true|True|TRUE|1|yes) set -- "$@" --referrers ;;
esac
[ -n "${INPUT_OVERWRITE:-}" ] && set -- "$@" --overwrite "$INPUT_OVERWRITE"
case "${INPUT_PRUNE:-false}" in
  true|True|TRUE|1|yes) set -- "$@" --prune ;;
esac
if [ -n "${INPUT_PRUNE_PROTECT:-}" ]; then
  while IFS= read -r pattern; do
    [ -n "$pattern" ] && set -- "$@" --prune-protect "$pattern"
  done <<EOF
$INPUT_PRUNE_PROTECT
EOF
fi
[ -n "${INPUT_MAX_PRUNE:-}" ] && set -- "$@" --max-prune "$INPUT_MAX_PRUNE"
[ -n "${INPUT_IMMUTABLE_TAGS:-}" ] && set -- "$@" --immutable-tags "$INPUT_IMMUTABLE_TAGS"
case "${INPUT_FAIL_ON_DRIFT:-false}" in
  true|True|TRUE|1|yes) set -- "$@" --fail-on-drift ;;
esac
case "${INPUT_CREATE_TARGETS:-false}" in
  true|True|TRUE|1|yes) set -- "$@" --create-targets ;;
esac
case "${INPUT_DRY_RUN:-false}" in
  true|True|TRUE|1|yes) set -- "$@" --dry-run ;;
esac

/usr/local/bin/image-migrator "$@"
code=$?

# Exit 1 = some images failed (the rest were copied). Configuration errors (2) always fail.
if [ "$code" -eq 1 ]; then
  case "${INPUT_FAIL_ON_ERROR:-true}" in
    false|False|FALSE|0|no)
      echo "image-migrator: some images failed; fail_on_error is false, so the step succeeds" >&2
      exit 0 ;;
  esac
fi
exit "$code"

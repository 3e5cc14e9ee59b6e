#!/bin/sh
# Entrypoint of acsprov's container image.
#
# The image pins a CRDS context by name (CRDS_CONTEXT) with CRDS_PATH, jref and
# CRDS_SERVER_URL set as in the ACS Data Handbook.  ACSPROV_CRDS_SYNC chooses what
# to fetch from that server before the command runs:
#   none (default)  nothing; use what the image holds
#   mappings        crds sync --contexts $CRDS_CONTEXT   (the rules only)
#   references      ... --fetch-references               (rules and reference files)
# If CRDS_PATH then holds no mappings of the pinned context (offline, nothing baked
# in), the CRDS variables are dropped so acsprov uses its own local CRDS cache
# ($ACSPROV_CRDS_PATH, or the user's ~/.cache/acsprov/crds_cache), and ACSPROV_CRDS_SOURCE records which one applies.
set -eu

sync_failed() {
    echo "acsprov image: crds sync of ${CRDS_CONTEXT:-?} from ${CRDS_SERVER_URL:-?} failed" \
         "(offline? run without ACSPROV_CRDS_SYNC to use acsprov's local CRDS cache)" >&2
    exit 3
}

case "${ACSPROV_CRDS_SYNC:-none}" in
    none) ;;
    mappings)
        crds sync --contexts "$CRDS_CONTEXT" || sync_failed ;;
    references)
        crds sync --contexts "$CRDS_CONTEXT" --fetch-references || sync_failed ;;
    *)
        echo "acsprov image: ACSPROV_CRDS_SYNC must be none, mappings or references" >&2
        exit 2 ;;
esac

if [ -n "${CRDS_PATH:-}" ] && [ -f "$CRDS_PATH/mappings/hst/${CRDS_CONTEXT:-none}" ]; then
    export ACSPROV_CRDS_SOURCE="pinned $CRDS_CONTEXT in $CRDS_PATH"
else
    echo "acsprov image: no mappings of ${CRDS_CONTEXT:-?} in ${CRDS_PATH:-?}" \
         "(nothing baked in or synced); using acsprov's local CRDS cache" >&2
    unset jref CRDS_PATH CRDS_CONTEXT CRDS_SERVER_URL CRDS_OBSERVATORY
    export ACSPROV_CRDS_SOURCE="acsprov local cache"
fi

exec "$@"

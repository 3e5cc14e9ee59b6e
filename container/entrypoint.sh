#!/bin/sh
# Entrypoint of acsprov's container image.
#
# The image pins a CRDS context by name (CRDS_CONTEXT) with CRDS_PATH, jref and
# CRDS_SERVER_URL set as in the ACS Data Handbook.  ACSPROV_CRDS_SYNC chooses what
# to fetch from that server before the command runs:
#   none (default)  nothing; use what the image holds
#   mappings        crds sync --contexts $CRDS_CONTEXT   (the rules only)
#   references      ... --fetch-references               (rules and reference files)
# The variables stay set: acsprov calibrates archive data with the pinned context
# exactly as a host run with the same CRDS_CONTEXT does (fetching into CRDS_PATH what
# is not baked in or synced), and simulated data with its own synthetic cache
# ($ACSPROV_CRDS_PATH), never the other way round.  ACSPROV_CRDS_SOURCE, recorded in
# the PROV software agent, says which context archive data get and what CRDS_PATH holds.
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
    export ACSPROV_CRDS_SOURCE="pinned $CRDS_CONTEXT in $CRDS_PATH for archive data; acsprov synthetic cache for simulated data"
else
    echo "acsprov image: no mappings of ${CRDS_CONTEXT:-?} in ${CRDS_PATH:-?} yet:" \
         "archive data fetch them from ${CRDS_SERVER_URL:-?}; simulated data use" \
         "acsprov's synthetic cache" >&2
    export ACSPROV_CRDS_SOURCE="pinned ${CRDS_CONTEXT:-?} from ${CRDS_SERVER_URL:-?} into ${CRDS_PATH:-?} for archive data; acsprov synthetic cache for simulated data"
fi

exec "$@"

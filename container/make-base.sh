#!/usr/bin/env bash
# Make a local Debian bookworm base image without any registry:
# debootstrap --variant=minbase into a temporary root, then `podman import`.
#
#   container/make-base.sh IMAGE [ENGINE]
#
# The Debian mirror is the one apt already uses on this machine (first URI of a
# bookworm suite in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list),
# or $DEBIAN_MIRROR if set.  Needs root (debootstrap) and the debootstrap package.
set -euo pipefail

image=${1:?usage: make-base.sh IMAGE [ENGINE]}
engine=${2:-podman}

mirror_from_apt() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # deb822 stanzas (blank-line separated): URIs of a "deb" stanza for bookworm
        awk 'function flush() { if (deb && suite && uri != "") print uri; deb = suite = 0; uri = "" }
             /^[ \t]*$/ { flush(); next }
             /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
             /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
             /^URIs:/ { uri = $2 }
             END { flush() }' "$f"
    done
    if [ -f /etc/apt/sources.list ]; then
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i+1) == "bookworm") print $i; break } }' \
            /etc/apt/sources.list
    fi
}

mirror=${DEBIAN_MIRROR:-$(mirror_from_apt | grep -v -- '-security' | head -n 1)}
if [ -z "$mirror" ]; then
    echo "make-base.sh: no Debian bookworm mirror found in apt's sources; set DEBIAN_MIRROR" >&2
    exit 1
fi
command -v debootstrap >/dev/null || {
    echo "make-base.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }

root=$(mktemp -d "${TMPDIR:-/tmp}/acsprov-base.XXXXXX")
trap 'rm -rf "$root"' EXIT
echo "debootstrap --variant=minbase bookworm from $mirror" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" >&2
# Keep the image small: no package lists or caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" --numeric-owner -c . | "$engine" import \
    --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "$image imported from a debootstrap minbase root ($mirror)" >&2

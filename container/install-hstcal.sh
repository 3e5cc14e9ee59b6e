#!/usr/bin/env bash
# Install hstcal into PREFIX from an explicit conda lock file, with micromamba.
#
#   install-hstcal.sh LOCK PREFIX
#   install-hstcal.sh --print-pin LOCK      print "VERSION BUILD" of the locked hstcal
#
# A lock naming only hstcal: that exact build, its runtime libraries solved from
# conda-forge.  A lock naming more packages: exactly those, nothing solved.
# Afterwards the environment is exported (explicit, with md5s) to
# PREFIX/conda-explicit.txt, the hstcal version to PREFIX/VERSION, and calacs.e must run.
set -euo pipefail

print_pin=""
if [ "${1:-}" = --print-pin ]; then
    print_pin=1
    shift
fi
lock=${1:?usage: install-hstcal.sh LOCK PREFIX}

mapfile -t urls < <(grep -E '^https?://' "$lock")
hstcal_url=$(printf '%s\n' "${urls[@]}" | grep -E '/hstcal-[0-9][^/]*\.(conda|tar\.bz2)(#.*)?$' || true)
if [ -z "$hstcal_url" ] || [ "$(printf '%s\n' "$hstcal_url" | wc -l)" -ne 1 ]; then
    echo "install-hstcal.sh: $lock must name exactly one hstcal package" >&2
    exit 1
fi
# .../linux-64/hstcal-3.1.0-h032429d_3.conda -> version 3.1.0, build h032429d_3
file=${hstcal_url##*/}
file=${file%%#*}
stem=${file%.conda}
stem=${stem%.tar.bz2}
build=${stem##*-}
rest=${stem%-*}
version=${rest##*-}
if [ -n "$print_pin" ]; then
    echo "$version $build"
    exit 0
fi
prefix=${2:?usage: install-hstcal.sh LOCK PREFIX}

if [ "${#urls[@]}" -eq 1 ]; then
    micromamba create --yes --prefix "$prefix" --override-channels --channel conda-forge \
        "conda-forge::hstcal==${version}=${build}"
else
    micromamba create --yes --prefix "$prefix" --file "$lock"
fi
micromamba env export --prefix "$prefix" --explicit --md5 > "$prefix/conda-explicit.txt"
printf '%s\n' "$version" > "$prefix/VERSION"
"$prefix/bin/calacs.e" --version
micromamba clean --all --yes

#!/usr/bin/env bash
# Install the system packages psdnet-qgis needs on Debian 12 (bookworm):
# QGIS 3.40 LTR from bookworm-backports, GDAL, rasterio, numpy, venv.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

need_pkgs="qgis python3-qgis python3-gdal python3-numpy python3-rasterio python3-venv python3-pip"

have_qgis_340() {
    dpkg-query -W -f='${Version}' qgis 2>/dev/null | grep -q '^3\.\(4[0-9]\|[5-9][0-9]\)' || return 1
    for p in $need_pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
}

if have_qgis_340; then
    echo "system packages: present (QGIS $(dpkg-query -W -f='${Version}' qgis))"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi

# bookworm-backports: same URI and component as the machine's own bookworm entry.
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/{u=$2} /^Suites:/ && /(^| )bookworm( |$)/{print u; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1=="deb" && $3=="bookworm"{print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || { echo "error: no Debian bookworm apt source found to derive bookworm-backports from" >&2; exit 1; }
    echo "adding bookworm-backports ($uri)"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
        | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
fi

$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports \
    qgis python3-qgis qgis-providers
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    python3-gdal python3-numpy python3-rasterio python3-venv python3-pip gdal-bin
echo "system packages: installed (QGIS $(dpkg-query -W -f='${Version}' qgis))"

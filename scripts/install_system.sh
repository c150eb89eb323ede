#!/usr/bin/env bash
# System packages psdnet-qgis needs, as root or with sudo. Idempotent: does nothing when they are there.
#   Debian 12 (bookworm): QGIS 3.40 from bookworm-backports (bookworm's own 3.22 is too old).
#   Debian 13 (trixie):   QGIS 3.44 LTR from trixie-backports; trixie's own 3.40 when the
#                         backports suite cannot be reached; python3-torch (the pinned torch
#                         wheel is for Python 3.11, trixie's Python is 3.13).
# Both: GDAL for the system Python, numpy, venv; python3-rasterio too (the design's package
# list; no module of the project imports it, so it is installed with the rest but not
# checked). Elsewhere: a message saying what is supported and what to install by hand (any
# system whose python3 imports QGIS >= 3.40 and GDAL is accepted as it is).
set -euo pipefail

PYTHON_SYS=${PYTHON_SYS:-/usr/bin/python3}
common_pkgs="python3-qgis python3-gdal python3-numpy python3-rasterio python3-venv python3-pip gdal-bin"

# The system Python already has what the project needs: QGIS >= 3.40 bindings, GDAL, numpy, venv.
have_python_stack() {
    "$PYTHON_SYS" - <<'EOF' 2>/dev/null
import ensurepip, venv  # noqa: F401 - Debian ships them in python3-venv
import numpy  # noqa: F401
from osgeo import gdal  # noqa: F401
from qgis.core import Qgis
major, minor = (int(x) for x in Qgis.version().split(".")[:2])
raise SystemExit(0 if (major, minor) >= (3, 40) else 1)
EOF
}

codename=""
[ -r /etc/os-release ] && codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

need_torch=""
[ "$codename" = trixie ] && need_torch=python3-torch
if have_python_stack && { [ -z "$need_torch" ] || dpkg-query -W -f='${Status}' "$need_torch" 2>/dev/null | grep -q "install ok installed"; }; then
    echo "system packages: present (QGIS $("$PYTHON_SYS" -c 'from qgis.core import Qgis; print(Qgis.version())' 2>/dev/null))"
    exit 0
fi

case "$codename" in
    bookworm|trixie) ;;
    *)
        cat >&2 <<EOF
error: this system ($(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}" || echo unknown)) is not one
the set-up script supports, and its $PYTHON_SYS does not import QGIS >= 3.40 and GDAL.
Supported: Debian 12 (bookworm, QGIS 3.40 from bookworm-backports) and Debian 13 (trixie,
QGIS 3.44 LTR from trixie-backports). Elsewhere install QGIS >= 3.40 with its Python bindings
(https://qgis.org/resources/installation-guide/) and GDAL's Python package for the same
Python, then run make again (PYTHON_SYS=/path/to/that/python3 if it is not $PYTHON_SYS).
EOF
        exit 1 ;;
esac

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
backports="$codename-backports"

# The backports suite: same URI and component as the machine's own entry for the release.
if ! grep -rqs -- "$backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk -v s="$codename" '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i==s){print u; exit}}' "$f")
        [ -n "$uri" ] && break
    done
    if [ -z "$uri" ]; then
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
              | awk -v s="$codename" '$1=="deb" && $3==s {print $2; exit}')
    fi
    if [ -n "$uri" ]; then
        echo "adding $backports ($uri)"
        printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$uri" "$backports" | $SUDO tee "/etc/apt/sources.list.d/$backports.sources" >/dev/null
    else
        echo "warning: no Debian $codename apt source found to derive $backports from" >&2
    fi
fi

$SUDO apt-get update -q || echo "warning: apt-get update reported errors (an unreachable suite?)" >&2
install() { $SUDO apt-get install -y -q --no-install-recommends "$@"; }

if [ "$codename" = bookworm ]; then
    # bookworm's own QGIS (3.22) is end of life: backports is required here.
    install -t "$backports" qgis python3-qgis qgis-providers || {
        echo "error: QGIS 3.40 could not be installed from $backports; check that the suite is reachable" >&2
        exit 1
    }
else
    if apt-cache policy qgis 2>/dev/null | grep -q -- "$backports" \
        && install -t "$backports" qgis python3-qgis qgis-providers; then
        :
    else
        echo "note: $backports cannot be reached or has no QGIS: installing trixie's own QGIS 3.40" >&2
        install qgis python3-qgis qgis-providers
    fi
fi
install $common_pkgs $need_torch
echo "system packages: installed (QGIS $(dpkg-query -W -f='${Version}' qgis))"

#!/usr/bin/env bash
# The project's virtual environment: made with the system Python that QGIS uses (whatever its
# version) with system site packages, so QGIS and GDAL come from the system; then
# torch and the PACKAGES given as arguments from the package index.
#   VENV        folder of the environment (default .venv)
#   PYTHON_SYS  the system Python (default /usr/bin/python3)
#   TORCH_SPEC  a pip requirement for torch; empty: keep a torch the environment already sees
#               (Debian 13's python3-torch), else the pinned CPU wheel, else the index's default build
#   PIP_EXTRA   extra pip options (e.g. an --extra-index-url)
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON_SYS=${PYTHON_SYS:-/usr/bin/python3}
TORCH_PIN="torch==2.13.0+cpu"
PY="$VENV/bin/python"
read -r -a pip_extra <<< "${PIP_EXTRA:-}"

[ -x "$PY" ] || "$PYTHON_SYS" -m venv --system-site-packages "$VENV"

# numpy stays the system's: the system GDAL and QGIS were built against its major
# version (1.x on Debian 12, 2.x on Debian 13), and a pip numpy would shadow it.
"$PY" -c 'import numpy; print("numpy==" + numpy.__version__)' > "$VENV/constraints-system.txt"
pip_install() { "$PY" -m pip install -q "${pip_extra[@]}" -c constraints.txt -c "$VENV/constraints-system.txt" "$@"; }

if [ -n "${TORCH_SPEC:-}" ]; then
    pip_install "$TORCH_SPEC"
elif "$PY" -c 'import torch' 2>/dev/null; then
    echo "torch: using the one already importable ($("$PY" -c 'import torch; print(torch.__version__, torch.__file__)'))"
elif pip_install "$TORCH_PIN" 2>/dev/null; then
    :
else
    echo "torch: $TORCH_PIN is not on the configured index for Python $("$PY" -c 'import sys; print(sys.version.split()[0])');" \
         "installing the index's default torch build (on PyPI for Linux x86-64 a CUDA build, about 3 GB with its" \
         "CUDA libraries; for a CPU build set PIP_EXTRA=\"--index-url https://download.pytorch.org/whl/cpu\")" >&2
    pip_install torch
fi
[ $# -eq 0 ] || pip_install "$@"
"$PY" -c "import torch, numpy, osgeo.gdal, qgis.core; print('environment ok: Python', __import__('sys').version.split()[0], '| torch', torch.__version__, '| numpy', numpy.__version__, '| GDAL', osgeo.gdal.__version__, '| QGIS', qgis.core.Qgis.version())"

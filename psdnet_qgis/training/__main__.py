"""``python -m psdnet_qgis.training ...``: see :mod:`psdnet_qgis.training.cli`."""

from __future__ import annotations

from psdnet_qgis.training.cli import main

raise SystemExit(main())

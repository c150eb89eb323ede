"""Test-wide settings: small thread counts (2-core CI machine), repository on sys.path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def file_size_limit():
    """Set the process's file size limit (RLIMIT_FSIZE) for one test: a real write failure.

    The kernel then refuses writes past the limit (EFBIG; Python ignores SIGXFSZ), exactly where a
    full disk refuses them (ENOSPC): GDAL's own error path, nothing mocked.
    """
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def limit(nbytes: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(nbytes), hard))

    yield limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

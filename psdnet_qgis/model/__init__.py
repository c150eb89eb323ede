"""model layer (see docs/ARCHITECTURE.md).

Importing this package before torch asks torch's CPU allocator for transparent huge pages
(``THP_MEM_ALLOC_ENABLE=1``, Linux only; torch reads it once, at its first allocation, so it is
set here, before any module of this layer imports torch; a value the user set is kept, ``0``
switches it off). Every buffer of 2 MB or more (the network's feature maps) is then
``madvise``d for huge pages: a freed map's memory is reused in 2 MB pages instead of being
split among smaller buffers, which kept the full model's bf16 heap from growing to three times
its live maps (docs/RUNTIMES.md, "Huge pages"). Where the kernel's THP mode is ``never``, or
torch was imported before this package, nothing changes. With the kernel's THP defrag setting
``madvise`` a fault in such a buffer may compact memory first when no free huge page is at hand
(a cost on a machine short of free memory; ``THP_MEM_ALLOC_ENABLE=0`` avoids it).
"""

from __future__ import annotations

import os
import sys

#: Whether this import set ``THP_MEM_ALLOC_ENABLE`` in time (torch not imported yet).
HUGE_PAGES_REQUESTED = False
if sys.platform.startswith("linux") and "torch" not in sys.modules:
    HUGE_PAGES_REQUESTED = os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1") == "1"

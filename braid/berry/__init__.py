"""``braid.berry`` re-exports berry under the seed's documented qualified name.

``braid.berry.initializations`` is the very module object
:mod:`berry.initializations` (not a copy), so rules registered through either
name are seen by both.
"""

import sys

import berry.initializations as initializations

sys.modules[__name__ + ".initializations"] = initializations

__all__ = ["initializations"]

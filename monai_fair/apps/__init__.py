# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""Applications built on monai-fair: :mod:`monai_fair.apps.monailabel` (MONAI Label app, extra ``[label]``).

Nothing is imported here, so ``import monai_fair`` never needs the optional application dependencies.
"""

from __future__ import annotations

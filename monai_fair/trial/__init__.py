# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
"""The fairness trial: every mitigation method against ERM and controls, over seeds, on the user's data.

Nothing heavy is imported here; ``monai_fair.trial.runner`` runs a trial, ``monai_fair.trial.report`` writes its
comparison report, ``monai_fair.trial.arms`` lists the arms.
"""

from __future__ import annotations

from monai_fair.trial.arms import ARMS, Arm, load_arms, resolve_arms

__all__ = ["ARMS", "Arm", "load_arms", "resolve_arms"]

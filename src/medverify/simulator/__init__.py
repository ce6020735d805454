"""The patient simulator: Fact Unit, Affective Unit, Guard, Termination Gate.

``ConsultationEnv`` is the environment with the two hooks (``respond`` and ``is_finished``) that
``medverify simulate``, the consultation task and RL rollouts drive; ``run_consultation`` plays one
consultation with a doctor backend. The case records it plays live in :mod:`medverify.cases`.
"""

from medverify.simulator.consult import run_consultation
from medverify.simulator.environment import ConsultationEnv

__all__ = ["ConsultationEnv", "run_consultation"]

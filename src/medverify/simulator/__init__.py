"""The patient simulator: case records, Fact Unit, Affective Unit, Guard, Termination Gate.

``ConsultationEnv`` is the environment with the two hooks (``respond`` and ``is_finished``) used by
``medverify simulate``, the demo, evaluation and RL rollouts; ``run_consultation`` plays one
consultation with a doctor backend.
"""

from medverify.simulator.consult import run_consultation
from medverify.simulator.environment import ConsultationEnv
from medverify.simulator.records import CaseRecord, Fact, Persona, Transcript, Turn

__all__ = [
    "CaseRecord",
    "ConsultationEnv",
    "Fact",
    "Persona",
    "Transcript",
    "Turn",
    "run_consultation",
]

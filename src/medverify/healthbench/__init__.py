"""HealthBench, scored exactly as the reference does: data, sampling, grading, meta-eval.

Commands: ``medverify healthbench run|grade|meta-eval``.
"""

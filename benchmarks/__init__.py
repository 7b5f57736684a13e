"""arrowlog benchmarks: one script per question, run with ``python -m benchmarks``."""

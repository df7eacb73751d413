"""Reliability tooling: ``advbench chaos`` (kill-and-rerun) and its battery of bad inputs.

Only these constants live here, for the command line's choices: the harness itself (and psutil) is imported
when ``advbench chaos`` runs, never by a training job.
"""

KINDS = ("workflow", "session", "worker")  # what a kill may hit
CHAOS_CONFIGS = ("presets/smoke.yaml", "presets/chaos.yaml")  # presets merged over config.yaml

"""What a validated config asks the workflow to make: every output path, every job's JSON, and the report's
contents. The rules in ``workflow/rules/`` read them from here, so each is written once."""

from advbench.plan.workflow import PATHS, Plan, path, ray_cluster, ray_threads_and_slot

__all__ = ["PATHS", "Plan", "path", "ray_cluster", "ray_threads_and_slot"]

"""Where the work runs: Ray (``ray``: join a cluster or start an embedded loopback-only instance, one task
per key), inside a task (``task``), cleanup after killed Rays (``cleanup``), the workdir lock
(``workdir``), atomic files (``files``), job logs (``logs``) and malloc tuning (``allocator``).

With ``RAY_ADDRESS`` (or ``ray.address`` in the config) set, jobs join that cluster. Otherwise a local
workflow run starts one embedded Ray for all its jobs (:func:`advbench.runtime.ray.start_shared_head`, from
Snakemake's ``onstart``)
and every job joins it. A job without either (run by hand, or on a remote executor) starts a private local
Ray with explicit ``num_cpus`` (the rule's threads); every local Ray has no dashboard, a capped object store
and its own temp dir, and listens on 127.0.0.1 only.
``use_ray=False`` runs the same task functions serially in-process (unit tests, debugging).
"""

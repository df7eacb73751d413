"""``advbench bench`` (``suite``) and ``advbench budgets`` (``budgets``): speed against torchattacks and ART,
the physical floors, and what each epoch budget buys. Tooling: no job of the workflow imports it.
"""

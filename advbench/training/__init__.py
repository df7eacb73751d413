"""Training: the SGD loop with pylearn2's schedule, early stopping and stage-2 retraining (``loop``), and the
whole state a task saves to resume at epoch granularity (``state``).
"""

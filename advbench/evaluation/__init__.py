"""Scoring models: clean and FGSM error and confidence over an eps grid (``scores``), and the paper's other
analyses: agreement, logit sweeps, rubbish inputs (``analyses``).
"""

"""advbench: a reproducible benchmark of Goodfellow, Shlens & Szegedy (ICLR 2015)."""

__version__ = "0.1.0"

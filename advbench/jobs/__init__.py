"""What one Snakemake job does (one module per kind of job): put the data once, run one task per seed,
write one Parquet file.

Task functions are module-level so Ray can ship them; each is also callable directly (the serial path).
"""

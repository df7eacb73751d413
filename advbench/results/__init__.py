"""Results as data: explicit pyarrow schemas (``schemas``), provenance metadata (``provenance``), checked
reads and writes of Parquet tables (``tables``), and checkpoints as safetensors (``checkpoints``).
"""

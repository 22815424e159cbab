"""The model registry: versioned model artifacts, their integrity, metrics and lineage."""

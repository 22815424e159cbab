"""Training data: point-in-time joins of feature views, splits and reproducible training datasets."""

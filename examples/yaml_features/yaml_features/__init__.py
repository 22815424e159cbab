"""An example shop whose feature groups, feature view and training dataset are declared in ``defs/shop/defs.yaml``."""

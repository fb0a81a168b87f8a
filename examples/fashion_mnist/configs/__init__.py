"""The example's settings: `default.get_config()` is the reference experiment."""

"""Datasets bundled with the package, referenced from recipes as `builtin:NAME`."""

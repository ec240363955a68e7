"""Registered models. Importing a module here registers its factories and classes (by path)."""

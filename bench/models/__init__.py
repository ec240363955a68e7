"""Registered models. Importing a module here registers its factories."""

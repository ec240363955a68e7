"""Helpers shared by test modules (imported as ``support.*``; the tests folder is on the path):
services a test starts on 127.0.0.1, the one-line CLI error check, suite texts."""

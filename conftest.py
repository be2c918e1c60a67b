"""Registers the shared fixtures (real broker, Postgres, Redis) for every test in the repository."""

pytest_plugins = ["dialguard.testing.pytest_plugin"]

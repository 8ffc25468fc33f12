"""Suites: compositions of the stages that measure a model family end to end."""

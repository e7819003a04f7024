"""Pollers: event source mappings that pull records and invoke functions."""

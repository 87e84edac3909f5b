"""Maintenance windows: the pure rules (`windows`) and their store (`store`)."""

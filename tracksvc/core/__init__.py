"""
Core types and plumbing: models, errors, settings, logging, metrics, Redis connections.
Imports nothing else of tracksvc (only the carriers library and third parties).
"""

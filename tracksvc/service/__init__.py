"""
The lookup use case: resolve, ask, classify, aggregate, answer.
Imports tracksvc.registry.store, tracksvc.economy, tracksvc.domain and tracksvc.core.
"""

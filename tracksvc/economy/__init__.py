"""
The carrier economy: cache, single flight, batching, budgets, breakers, the gate and the tracker.
Imports tracksvc.domain, tracksvc.core and the carriers library.
"""

"""
tracksvc: where is this order, really?

Maps order numbers, shipping numbers and return numbers to carrier tracking
numbers, asks UPS, FedEx and USPS concurrently and answers one normalized
status. Importing this package has no side effects.
"""

__version__ = "0.1.0"

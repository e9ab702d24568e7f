"""
Carrier adapters: one package per carrier (``ups``, ``fedex``, ``usps``),
each exporting ``Adapter``; ``carriers.registry.REGISTRY`` maps a carrier to
its adapter class. ``carriers.sandbox`` emulates all three for tests and the
demo. Importing this package imports nothing else.
"""

"""
The registry in Redis: shipments, orders, references, the unscanned-label index, imports.
Imports tracksvc.domain and tracksvc.core.
"""

"""
Keeping answers fresh: the refresher, carrier push events, outbound webhooks.
Imports tracksvc.service.lookup and the layers below it.
"""

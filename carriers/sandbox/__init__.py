"""The carrier sandbox: UPS, FedEx and USPS emulated in their real wire formats."""

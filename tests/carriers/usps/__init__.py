"""Tests of the USPS adapter, its tables and the USPS sandbox."""

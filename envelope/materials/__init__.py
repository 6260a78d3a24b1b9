"""Cryptographic materials and the managers that assemble them from keyrings."""

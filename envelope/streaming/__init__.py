"""Streaming encryption and decryption: sans-IO state machines and the drivers that run them."""

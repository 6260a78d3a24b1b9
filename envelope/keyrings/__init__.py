"""Keyrings: wrap data keys into encrypted data keys and unwrap them again."""

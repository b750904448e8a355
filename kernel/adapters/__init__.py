"""Venue adapters: one module or folder per venue, each a feed of verified books."""

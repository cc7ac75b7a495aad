"""The embedded symbolic model: a small music transformer trained here and shipped as package data."""

"""musegen: make music with generative models.

Importing this package is cheap: numpy, librosa and torch load only when the
functions that need them are called.
"""

__version__ = "0.1.0"

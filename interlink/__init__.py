"""interlink: a multi-tenant WhatsApp ⇄ Genesys Cloud Open Messaging bridge, built as an actor runtime.

Importing this package has no side effects: the entry point (``interlink.__main__``) patches the
standard library for gevent before anything else is imported.
"""

__version__ = "0.1.0"

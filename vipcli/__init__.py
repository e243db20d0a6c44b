"""vipcli: VIP membership and customer archive over one SQLite file."""

__version__ = "0.1.0"

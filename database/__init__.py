"""The PostgreSQL database that router replicas share: its numbered migrations, and the connection to it."""

from database.connection import Database

__all__ = ["Database"]

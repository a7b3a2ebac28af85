"""Storage: the PostgreSQL database that router replicas share (its numbered migrations, and the connection
to it), and files and folders written whole (`database.files`)."""

from database.connection import Database

__all__ = ["Database"]

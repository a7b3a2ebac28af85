"""The PostgreSQL database that router replicas share: its numbered migrations, and the connection to it."""

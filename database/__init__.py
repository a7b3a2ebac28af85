"""Storage: the PostgreSQL database that router replicas share (`database.connection`, with its numbered
migrations), and files and folders written whole (`database.files`).

Nothing is imported here, so that a package writing files does not load the PostgreSQL driver."""

"""Running the app at scale: a local PostgreSQL (local_postgres), and later the nginx and replica runner."""

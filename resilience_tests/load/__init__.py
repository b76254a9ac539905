"""Load with Locust: shapes, per-second samples, and running Locust in its own processes."""

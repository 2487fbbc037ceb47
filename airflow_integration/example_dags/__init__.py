"""Example DAGs for the azsql-bulk Airflow provider."""

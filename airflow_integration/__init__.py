"""Airflow provider for azsql-bulk (hook and operator arrive with the Airflow issue)."""

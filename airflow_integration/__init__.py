"""Airflow provider for azsql-bulk: the ``azure_sql_bulk`` connection, hook and load operator.

Import the classes from their modules (``airflow_integration.hooks``,
``airflow_integration.operators``); this package itself imports no Airflow, so the
providers manager can read :func:`airflow_integration.provider_info.get_provider_info`
cheaply. See ``airflow_integration/README.md``.
"""

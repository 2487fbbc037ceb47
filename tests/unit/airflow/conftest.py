"""Keep Airflow's files out of ``~/airflow``: a throw-away AIRFLOW_HOME unless one is set.

Airflow reads its configuration at first import, so this runs before the tests import it.
"""

from __future__ import annotations

import os
import tempfile

if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="azsql-airflow-home-")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

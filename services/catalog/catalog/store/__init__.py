"""Persistence of the catalog: one repository per aggregate, the unit of work over them
(`database.py`), and the hot statements on the raw connection (`hot.py`)."""

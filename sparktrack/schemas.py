"""The store's Delta tables and their schemas: the public contract for dashboards and any Delta
reader (``spark.read.format("delta")``, BI tools, ``deltalake``).

Each table is a :class:`TableSpec` (folder name under the store root, Arrow schema, partition
columns, description); :data:`SCHEMA_VERSION` says which version of the contract a store was
written with. The definitions live with the store; this module is their public name.
"""

from sparktrack._store.schemas import *  # noqa: F403 - the public face of the definitions
from sparktrack._store.schemas import __all__  # noqa: F401

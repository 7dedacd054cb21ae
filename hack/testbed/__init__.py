"""The project's own test bed: a real control plane, a real RabbitMQ and a real PostgreSQL
(the history archive's) and an S3-compatible server (large payloads'), started locally.

Used by the pytest fixtures (``tests/conftest.py``) and by the dev stack
(``python -m testbed.devstack``). ``wait_until`` is the one wait of the launchers and the
tests: it polls a check, fails fast when a watched process dies, and says what it waited
for, with the last error of the check, when time runs out.
"""

from testbed._proc import wait_until
from testbed.controlplane import ControlPlane
from testbed.postgres import PostgreSQL
from testbed.rabbitmq import RabbitMQ
from testbed.rabbitmq_cluster import RabbitMQCluster
from testbed.s3 import S3Server

__all__ = ["ControlPlane", "PostgreSQL", "RabbitMQ", "RabbitMQCluster", "S3Server", "wait_until"]

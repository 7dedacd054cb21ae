"""The project's own test bed: a real control plane and a real RabbitMQ, started locally.

Used by the pytest fixtures (``tests/conftest.py``) and by the dev stack
(``python -m testbed.devstack``).
"""

from testbed.controlplane import ControlPlane
from testbed.rabbitmq import RabbitMQ
from testbed.rabbitmq_cluster import RabbitMQCluster

__all__ = ["ControlPlane", "RabbitMQ", "RabbitMQCluster"]

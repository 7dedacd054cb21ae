"""The operator's RabbitMQ side: the consuming thread (:class:`Broker`, which implements
:class:`~asynctask_operator.ports.TaskBroker`) and the confirmed publishers it owns."""

from asynctask_operator.broker.consumer import Broker

__all__ = ["Broker"]

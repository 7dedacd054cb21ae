"""The leader room: leader election on a Lease (``--peering``). :mod:`.election` decides
(pure), :mod:`.leadership` reads and writes the Lease and keeps the time."""

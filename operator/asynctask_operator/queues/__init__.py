"""Queue policy (AsyncQueue): what may be published now, decided in pure modules
(:mod:`policy`, :mod:`buckets`, :mod:`admission`) and carried out by :mod:`gate`."""

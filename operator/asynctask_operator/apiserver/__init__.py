"""The apiserver room: the one asyncio client (:mod:`.apiclient`), list+watch
(:mod:`.listwatch`), the AsyncTask resource's coordinates (:mod:`.resource`) and the
operator's calls in the task logic's words (:mod:`.kube`). The gateway uses it too; it
imports nothing of the operator but :mod:`asynctask_operator.errors` and
:mod:`asynctask_operator.limits`."""

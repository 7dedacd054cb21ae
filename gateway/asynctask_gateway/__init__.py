"""AsyncTask HTTP gateway: submit, poll, long-poll, stream and cancel AsyncTasks over HTTP,
authenticated and authorized the Kubernetes way (TokenReview + SubjectAccessReview).

Stateless: the AsyncTask objects are the only state, read through one shared list+watch
cache per process. See docs/gateway.md.
"""

"""The project's one version: the distribution's (pyproject reads it), the CLIs' ``--version``,
the chart's ``version``/``appVersion``, the image's tag and labels, and the operator's
``asynctask_build_info`` metric. Release by changing it here (and in the chart, which a unit
test keeps equal) and adding its section to CHANGELOG.md."""

__version__ = "0.1.0"

"""AsyncTaskSchedule: tasks created on a cron schedule or an interval (issue 21).

``slots`` (when) and ``runs`` (what, and what to keep) decide without I/O; ``controller``
keeps one timer heap of every schedule's next slot and acts through ``ports.ScheduleApi``;
``watch`` feeds it from the apiserver.
"""

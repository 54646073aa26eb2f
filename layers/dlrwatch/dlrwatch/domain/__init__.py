"""The pure domain: statuses, reports, their precedence, provider times and the poll schedule.

Nothing here imports boto3 or requests; every function is deterministic given its inputs.
"""

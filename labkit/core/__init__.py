"""The ground floor of the lab: clock, timeline, faults, parameters and errors.

Nothing here imports anything from the floors above (transport, patterns, scenarios, faces).
"""

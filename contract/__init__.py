"""The contract between a device and the index system: what both sides share and nothing else.

- `messages`: the topic tree and the JSON Schemas every payload is checked against;
- `timebins`, `occupancy`, `ratings`, `day_summary`: the pure functions that define the
  figures (bins in local time, occupancy, satisfaction, the day summary), so that a device
  and the index compute them the same way.
"""

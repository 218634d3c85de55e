"""The model lifecycle of `kerasdrop serve`: which versions of which models serve, and running requests
on them (repository, models.config, manager and version policy, backends, golden replay, batching,
admission, metrics). Imports serving's leaves (errors, limits) and lower kerasdrop layers; never a
protocol or the process layer.
"""

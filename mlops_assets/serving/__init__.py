"""Online serving: a FastAPI app over the champions, with online features and a durable request log.

Use cases declare what they serve in their own ``serving.py`` (an :class:`endpoints.Endpoint`);
this package holds what no use case owns: loading champions by alias, reading online features,
the request log and the app itself.
"""

"""Realtime tasks (queue ``realtime``): ``etl.realtime.*``, fed by the webhooks service.

Empty until the webhooks work lands; listed in ``workers.app`` so the worker already loads it.
"""

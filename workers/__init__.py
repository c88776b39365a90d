"""Celery side of the project: the ``app`` and thin task wrappers over ``etl``."""

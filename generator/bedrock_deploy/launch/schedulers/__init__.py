"""The schedulers: one module each, registered with ``@register_scheduler``.

Every module of this package is imported when a scheduler is first looked up (see
:mod:`bedrock_deploy.launch.registry`), so a new scheduler is a new module here plus its job
script template; the interface is :class:`bedrock_deploy.launch.scheduler.Scheduler`.
"""

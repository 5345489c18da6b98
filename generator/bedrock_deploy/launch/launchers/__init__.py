"""The launchers: one module each, registered with ``@register_launcher``.

Every module of this package is imported when a launcher is first looked up (see
:mod:`bedrock_deploy.launch.registry`), so a new launcher is a new module here (plus its driver
template, if it writes one); the interface is :class:`bedrock_deploy.launch.launcher.Launcher`.
"""

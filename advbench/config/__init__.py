"""Configs: typed specs (``specs``), the run matrix (``runs``), validation against the packaged
``schema.yaml`` plus the cross-references a schema cannot express (``validation``), and loading
(``loading``). Job specs travel from the rules to the command line as JSON and come back as dataclasses.
"""

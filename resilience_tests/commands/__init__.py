"""The commands of ``resilience``, one module per family: each adds its parser(s) to the command line that
``cli.py`` assembles and implements the command(s).

cluster.py (``resilience cluster ...``), run.py (``run`` and ``report``), audit.py (``audit``, ``--prove``),
backup.py (``backup`` and ``restore``), cleanup.py (``cleanup``), platform.py (``platform``); common.py holds
what they share (the parser class, ``say``, the sessions of a read-only and of a changing command).
"""

"""Quality control of scans: laterality (``check-sides``), whether a header's left-right is believable.

``side_model`` (the side head and how a scan is read into a verdict), ``scans`` (what can be checked),
``check`` (the checks), ``report`` (CSV and JSON) and ``alarm`` (the check ``prepare`` and ``predict`` run).
"""

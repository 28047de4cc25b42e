"""Quality control of scans: laterality (``check-sides``), whether a header's left-right is believable.

``side_model`` (the side head and how a scan is read into evidence), ``inputs`` (what a scan's values and
outline say: reasons to withhold a verdict), ``verdict`` (a verdict, its thresholds and its reason),
``groups`` (scans of one patient or series judged together), ``scans`` (what can be checked), ``check``
(the checks), ``report`` (CSV and JSON) and ``alarm`` (the check ``prepare`` and ``predict`` run).
"""

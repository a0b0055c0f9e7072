"""docpipe's benchmark suite: ``python -m bench`` (or ``make bench``); see ``bench/__main__.py``.

Every number is reported next to a baseline measured in the same run, on the same machine, with the
same client, so that the ratios mean something on a noisy machine where absolute numbers do not.
"""

"""``docpipe-client``: docpipe's HTTP API from a terminal or a script (see README, "Command-line client").

It imports nothing of the server: it is installed on its own, with httpx and rich only.
"""

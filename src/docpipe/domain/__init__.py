"""The pure core: what a document is and what docpipe does with it. Imports no adapter or web framework."""

"""docpipe: async document storage with a streaming HTTP API over pluggable stores."""

"""The server runtime every InstructForge service shares: settings, errors, interceptors, serving."""

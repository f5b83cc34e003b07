"""The API edge: the only package that talks to the API server (see `client`)."""

"""Test harness: a real local API server (`cluster`) and a YAML fixture loader (`loader`)."""

"""Testing helpers for users of refrt (filled in by the oracle work)."""

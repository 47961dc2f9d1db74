"""State stores: the contract in base.py, one module per implementation."""

from kpk_io.store.base import ChangeListener, Conflict, Duplicate, StateStore, StoreUnavailable

__all__ = ["ChangeListener", "Conflict", "Duplicate", "StateStore", "StoreUnavailable"]

//! Traffic models (being written).

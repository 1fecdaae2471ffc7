//! Disruption analysis (being written).

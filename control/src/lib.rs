//! The control plane: BGP sessions, BFD, the RIB and multipath selection, and the writer that programs the data plane. Built in a later step; empty for now.

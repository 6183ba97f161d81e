//! A local inFlow Cloud API simulator.

//! The conformance suite of the event store port: every adapter runs it.

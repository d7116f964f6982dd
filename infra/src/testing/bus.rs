//! The conformance suite of the event bus port: every adapter runs it.

//! The event bus port and its adapters (NATS JetStream, in-process), and the relay that
//! publishes every committed event from the store to the bus.

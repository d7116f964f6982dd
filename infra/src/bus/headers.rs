//! [`MessageHeaders`]: a received message's headers, read where they arrived.
//!
//! Every consumer receives every event of its shards and skips most of them by two header
//! values (`route.rs`). Copying the NATS client's header map into an owned map of strings
//! for each of those messages (two allocations per header, seven headers) was ~7% of the
//! process in the flash-sale profile; looking a name up in the client's map costs nothing.

use std::collections::btree_map;
use std::fmt;

use super::Headers;

/// A received message's headers: the NATS client's map as it arrived, or an owned map (the
/// in-process bus, tests). One value per name; for a name sent twice, the last one.
#[derive(Clone, Default)]
pub struct MessageHeaders(Repr);

#[derive(Clone)]
enum Repr {
    Map(Headers),
    Nats(async_nats::HeaderMap),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Map(Headers::new())
    }
}

impl MessageHeaders {
    pub fn new() -> Self {
        Self::default()
    }

    /// The headers of a message from the NATS client, kept as they are.
    pub(crate) fn from_nats(headers: Option<async_nats::HeaderMap>) -> Self {
        match headers {
            Some(h) => MessageHeaders(Repr::Nats(h)),
            None => MessageHeaders::new(),
        }
    }

    /// A header's value. On a NATS message this scans the few headers it has, comparing
    /// names, which is cheaper than the client's own lookup (it copies the name to hash it).
    pub fn get(&self, name: &str) -> Option<&str> {
        match &self.0 {
            Repr::Map(map) => map.get(name).map(String::as_str),
            Repr::Nats(map) => map
                .iter()
                .find(|(n, _)| AsRef::<str>::as_ref(*n) == name)
                .and_then(|(_, values)| values.last())
                .map(|v| v.as_str()),
        }
    }

    /// Every header and its (last) value, in no particular order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::Map(map) => Iter(IterRepr::Map(map.iter())),
            Repr::Nats(map) => Iter(IterRepr::Nats(map.iter())),
        }
    }

    /// The headers as an owned map.
    pub fn to_map(&self) -> Headers {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The headers as an owned map to edit (copied on first use): for tests and tools.
    pub fn make_mut(&mut self) -> &mut Headers {
        if let Repr::Nats(_) = self.0 {
            self.0 = Repr::Map(self.to_map());
        }
        match &mut self.0 {
            Repr::Map(map) => map,
            Repr::Nats(_) => unreachable!("converted to a map above"),
        }
    }
}

impl From<Headers> for MessageHeaders {
    fn from(map: Headers) -> Self {
        MessageHeaders(Repr::Map(map))
    }
}

/// Equal when they hold the same names and values, whatever they are kept in.
impl PartialEq for MessageHeaders {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Map(a), Repr::Map(b)) => a == b,
            _ => self.to_map() == other.to_map(),
        }
    }
}

impl fmt::Debug for MessageHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// See [`MessageHeaders::iter`].
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Map(btree_map::Iter<'a, String, String>),
    Nats(
        std::collections::hash_map::Iter<
            'a,
            async_nats::header::HeaderName,
            Vec<async_nats::HeaderValue>,
        >,
    ),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Map(it) => it.next().map(|(k, v)| (k.as_str(), v.as_str())),
            IterRepr::Nats(it) => loop {
                let (name, values) = it.next()?;
                if let Some(last) = values.last() {
                    break Some((name.as_ref(), last.as_str()));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nats() -> MessageHeaders {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Orderflow-Shard", "17");
        h.insert("Nats-Msg-Id", "e-1");
        h.append("Twice", "first");
        h.append("Twice", "second");
        MessageHeaders::from_nats(Some(h))
    }

    #[test]
    fn nats_headers_are_read_in_place() {
        let h = nats();
        assert_eq!(h.get("Orderflow-Shard"), Some("17"));
        assert_eq!(h.get("Nats-Msg-Id"), Some("e-1"));
        assert_eq!(h.get("Twice"), Some("second"));
        assert_eq!(h.get("orderflow-shard"), None, "names are case-sensitive");
        assert_eq!(h.get("Missing"), None);
        assert_eq!(MessageHeaders::from_nats(None), MessageHeaders::new());
    }

    #[test]
    fn either_kind_compares_iterates_and_edits_as_a_map() {
        let mut h = nats();
        let map: Headers = [
            ("Nats-Msg-Id", "e-1"),
            ("Orderflow-Shard", "17"),
            ("Twice", "second"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(h.to_map(), map);
        assert_eq!(h, MessageHeaders::from(map.clone()));
        assert_eq!(h.iter().count(), 3);
        h.make_mut().remove("Twice");
        assert_eq!(h.get("Twice"), None);
        assert_eq!(h.get("Orderflow-Shard"), Some("17"));
    }
}

//! The hash map operators keep their state in: keyed by `ahash` rather than
//! std's SipHash, which is several times slower on the short byte keys
//! (Arrow row-format keys) every stateful operator looks up per row. The
//! keys are random per process, so crafted keys cannot force collisions.

pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
pub(crate) type HashSet<K> = std::collections::HashSet<K, ahash::RandomState>;

//! NATS subjects and the KV bucket of one cluster. Several clusters share one NATS server under different names.
//!
//! | subject / key                  | what                                                      |
//! |--------------------------------|-----------------------------------------------------------|
//! | `pk.<cluster>.hb`              | heartbeats of every node                                  |
//! | `pk.<cluster>.hello`           | a starting node asks who is there; each node answers      |
//! | `pk.<cluster>.gw.<id:016x>`    | envelopes for one node's gateway part                     |
//! | `pk.<cluster>.shard.<id:016x>` | envelopes for one node's shard part                       |
//! | `pk.<cluster>.fence.<id:016x>` | "you were declared dead": a fenced node learns it here    |
//! | `pk.<cluster>.inbox.>`         | replies to this cluster's requests (its inbox prefix)     |
//! | KV `pk_<cluster>`, `node-seq`  | the last node number handed out                           |
//! | KV `pk_<cluster>`, `owner.<k>` | the shard (`{:016x}`) that owns hand-over key `k`         |

/// The subjects of one cluster.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// The subjects of cluster `name` (letters, digits, `-` and `_`).
    pub fn new(name: &str) -> Self {
        Subjects { prefix: format!("pk.{name}") }
    }

    /// Heartbeats.
    pub fn heartbeat(&self) -> String {
        format!("{}.hb", self.prefix)
    }

    /// Who-is-there requests.
    pub fn hello(&self) -> String {
        format!("{}.hello", self.prefix)
    }

    /// Envelopes for the gateway part of `node`.
    pub fn gateway(&self, node: u64) -> String {
        format!("{}.gw.{node:016x}", self.prefix)
    }

    /// Envelopes for the shard part of `node`. A node with both roles gets each part's traffic on its own
    /// subject, so neither part reads (and discards) what is for the other.
    pub fn shard(&self, node: u64) -> String {
        format!("{}.shard.{node:016x}", self.prefix)
    }

    /// Fence notices for `node`: a node that declared `node` dead and then hears from it again says so here.
    pub fn fence(&self, node: u64) -> String {
        format!("{}.fence.{node:016x}", self.prefix)
    }
}

/// The inbox prefix of cluster `name`'s NATS clients (`ConnectOptions::custom_inbox_prefix`): replies to its
/// who-is-there and to its JetStream API and KV requests arrive under it, never under the shared `_INBOX.>`, so a
/// broker's permissions can grant one cluster exactly `pk.<name>.>` (and its bucket's JetStream subjects) and
/// nobody else's replies.
pub fn inbox_prefix(name: &str) -> String {
    format!("pk.{name}.inbox")
}

/// The KV bucket of cluster `name`.
pub fn bucket(name: &str) -> String {
    format!("pk_{name}")
}

/// The KV key recording who owns hand-over key `key`. Keys are hex-encoded, so any application key is a valid NATS
/// key.
pub fn owner_key(key: &str) -> String {
    let mut out = String::with_capacity(6 + key.len() * 2);
    out.push_str("owner.");
    for byte in key.bytes() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Whether `name` can name a cluster: 1 to 64 letters, digits, `-` or `_`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

//! Who is in the cluster: heartbeats over NATS, the table of live nodes, and the check that every node speaks the
//! same protocol.
//!
//! Every node publishes a heartbeat on `pk.<cluster>.hb` every `failure_timeout / 3` and counts a node dead once
//! it has not been heard for `failure_timeout`. A starting node first asks who is there (`pk.<cluster>.hello`, every
//! live node answers with its heartbeat) and refuses to join a cluster whose nodes were built from another protocol
//! (a different `Protocol::FINGERPRINT`) or speak another cluster protocol version.
//!
//! ```text
//! heartbeat := "PKHB" | version:u8 | node:u64 | roles:u8 (1 gateway, 2 shard) | fingerprint:u64 | state:u8
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::BufMut;

/// The cluster protocol's version: subjects, envelope and heartbeat layout. Nodes of another version are refused.
pub const CLUSTER_VERSION: u8 = 2;

const MAGIC: &[u8; 4] = b"PKHB";
const LEN: usize = 4 + 1 + 8 + 1 + 8 + 1;

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Holds client connections.
    pub gateway: bool,
    /// Runs the game.
    pub shard: bool,
}

impl Roles {
    fn bits(self) -> u8 {
        u8::from(self.gateway) | u8::from(self.shard) << 1
    }

    fn from_bits(bits: u8) -> Roles {
        Roles { gateway: bits & 1 != 0, shard: bits & 2 != 0 }
    }
}

/// A node's state as its heartbeat tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Taking new sessions.
    Live,
    /// Leaving: takes no new sessions or keys.
    Draining,
}

/// One heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The cluster protocol version the sender speaks.
    pub version: u8,
    /// The sender.
    pub node: u64,
    /// What it does.
    pub roles: Roles,
    /// Its protocol's fingerprint.
    pub fingerprint: u64,
    /// Whether it takes new work.
    pub state: NodeState,
}

impl Heartbeat {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(LEN);
        buf.put_slice(MAGIC);
        buf.put_u8(self.version);
        buf.put_u64_le(self.node);
        buf.put_u8(self.roles.bits());
        buf.put_u64_le(self.fingerprint);
        buf.put_u8(match self.state {
            NodeState::Live => 0,
            NodeState::Draining => 1,
        });
        buf
    }

    /// Reads a heartbeat; `None` if `bytes` is not one.
    pub fn decode(bytes: &[u8]) -> Option<Heartbeat> {
        if bytes.len() != LEN || &bytes[..4] != MAGIC {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        Some(Heartbeat {
            version: bytes[4],
            node: u64_at(5),
            roles: Roles::from_bits(bytes[13]),
            fingerprint: u64_at(14),
            state: if bytes[22] == 0 { NodeState::Live } else { NodeState::Draining },
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Member {
    roles: Roles,
    state: NodeState,
    last_seen: Instant,
}

/// The live table. Shared by the node's tasks.
#[derive(Debug)]
pub(crate) struct Membership {
    pub(crate) fingerprint: u64,
    pub(crate) failure_timeout: Duration,
    members: Mutex<Table>,
    /// Woken whenever a heartbeat is recorded: a receiver that got an envelope from a node it has not recorded yet
    /// waits on it briefly ([`Membership::admits`]).
    recorded: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Table {
    live: HashMap<u64, Member>,
    /// Nodes this one declared dead. Node ids are never reused, so a node stays fenced for good: what it sends later
    /// (it was paused, or cut off and came back) is dropped, and it is told so. It must rejoin under a new id.
    fenced: std::collections::HashSet<u64>,
}

/// What [`Membership::observe`] made of a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Recorded: the node is live (or draining).
    Recorded,
    /// From a node this one declared dead: not recorded. The caller tells it it is fenced.
    Fenced,
}

/// What [`Membership::standing`] knows of a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Announced in the role it acts in, with this cluster's fingerprint.
    Member,
    /// Declared dead before.
    Fenced,
    /// Never heard in that role.
    Unknown,
}

/// A heartbeat from a node this one cannot work with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Incompatible {
    Fingerprint { node: u64, theirs: u64 },
    Version { node: u64, theirs: u8 },
}

impl Membership {
    pub(crate) fn new(fingerprint: u64, failure_timeout: Duration) -> Self {
        Membership {
            fingerprint,
            failure_timeout,
            members: Mutex::new(Table::default()),
            recorded: tokio::sync::Notify::new(),
        }
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Table> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a heartbeat (this node's own included). A node built from another protocol or speaking another
    /// cluster version is not recorded: it is reported instead. Nor is a node declared dead before ([`Seen::Fenced`]).
    pub(crate) fn observe(&self, heartbeat: &Heartbeat) -> Result<Seen, Incompatible> {
        if heartbeat.version != CLUSTER_VERSION {
            return Err(Incompatible::Version { node: heartbeat.node, theirs: heartbeat.version });
        }
        if heartbeat.fingerprint != self.fingerprint {
            return Err(Incompatible::Fingerprint { node: heartbeat.node, theirs: heartbeat.fingerprint });
        }
        let member = Member { roles: heartbeat.roles, state: heartbeat.state, last_seen: Instant::now() };
        let mut table = self.members();
        if table.fenced.contains(&heartbeat.node) {
            return Ok(Seen::Fenced);
        }
        table.live.insert(heartbeat.node, member);
        drop(table);
        self.recorded.notify_waiters();
        Ok(Seen::Recorded)
    }

    /// Where `node` stands as a sender acting as a shard (`shard`) or as a gateway: recorded with that role (from a
    /// heartbeat with this cluster's fingerprint and version), fenced, or never heard in that role.
    pub(crate) fn standing(&self, node: u64, shard: bool) -> Standing {
        let table = self.members();
        if table.fenced.contains(&node) {
            return Standing::Fenced;
        }
        match table.live.get(&node) {
            Some(member) if (shard && member.roles.shard) || (!shard && member.roles.gateway) => Standing::Member,
            _ => Standing::Unknown,
        }
    }

    /// Whether to take work from `node` acting as a shard (`shard`) or a gateway: it announced that role with this
    /// cluster's fingerprint and is not fenced. A sender not recorded yet gets `grace`: its heartbeat travels on
    /// another subject ahead of its first envelope, but another task records it, which may not have run yet.
    pub(crate) async fn admits(&self, node: u64, shard: bool, grace: Duration) -> Standing {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let recorded = self.recorded.notified();
            tokio::pin!(recorded);
            recorded.as_mut().enable();
            match self.standing(node, shard) {
                Standing::Unknown => {}
                known => return known,
            }
            if tokio::time::timeout_at(deadline, recorded).await.is_err() {
                return self.standing(node, shard);
            }
        }
    }

    /// Shards heard within the failure timeout and taking new work, sorted by node id.
    pub(crate) fn live_shards(&self) -> Vec<u64> {
        let now = Instant::now();
        let mut shards: Vec<u64> = self
            .members()
            .live
            .iter()
            .filter(|(_, m)| m.roles.shard && m.state == NodeState::Live && now - m.last_seen < self.failure_timeout)
            .map(|(&node, _)| node)
            .collect();
        shards.sort_unstable();
        shards
    }

    /// Whether `node` said it is leaving (draining).
    pub(crate) fn is_draining(&self, node: u64) -> bool {
        self.members().live.get(&node).is_some_and(|m| m.state == NodeState::Draining)
    }

    /// Counts every known node as heard now: after this node's own NATS connection came back, the silence was ours,
    /// not theirs; they get a full failure timeout to be heard again.
    pub(crate) fn forgive(&self) {
        let now = Instant::now();
        for member in self.members().live.values_mut() {
            member.last_seen = now;
        }
    }

    /// Declares dead (and fences) the nodes not heard for the failure timeout; returns them. `me` is never
    /// declared dead.
    pub(crate) fn expire(&self, me: u64) -> Vec<u64> {
        let timeout = self.failure_timeout;
        let mut dead = Vec::new();
        let mut table = self.members();
        table.live.retain(|&node, m| {
            let alive = node == me || m.last_seen.elapsed() < timeout;
            if !alive {
                dead.push(node);
            }
            alive
        });
        table.fenced.extend(dead.iter().copied());
        dead
    }
}

/// Rendezvous (highest random weight) hashing: the node in `nodes` that scores highest for `key`. Every node that
/// sees the same live set picks the same one, and losing a node moves only the keys it had.
pub fn rendezvous(key: u64, nodes: &[u64]) -> Option<u64> {
    nodes.iter().copied().max_by_key(|&node| (mix(key ^ mix(node)), node))
}

/// A 64-bit hash of `text` (FNV-1a, then a SplitMix64 finish), for rendezvous keys.
pub fn hash_key(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_round_trip_and_junk_is_not_one() {
        let beat = Heartbeat {
            version: CLUSTER_VERSION,
            node: 0x0102_0304_0506_0708,
            roles: Roles { gateway: true, shard: false },
            fingerprint: 0xdead_beef_cafe_f00d,
            state: NodeState::Draining,
        };
        assert_eq!(Heartbeat::decode(&beat.encode()), Some(beat));
        assert_eq!(Heartbeat::decode(b"PKHB"), None);
        let mut wrong = beat.encode();
        wrong[0] = b'X';
        assert_eq!(Heartbeat::decode(&wrong), None);
    }

    #[test]
    fn other_fingerprints_and_versions_are_refused_not_recorded() {
        let table = Membership::new(42, Duration::from_secs(3));
        let shard = |node, fingerprint, version| Heartbeat {
            version,
            node,
            roles: Roles { gateway: false, shard: true },
            fingerprint,
            state: NodeState::Live,
        };
        assert_eq!(table.observe(&shard(2, 42, CLUSTER_VERSION)), Ok(Seen::Recorded));
        assert_eq!(
            table.observe(&shard(3, 43, CLUSTER_VERSION)),
            Err(Incompatible::Fingerprint { node: 3, theirs: 43 })
        );
        assert_eq!(table.observe(&shard(4, 42, 9)), Err(Incompatible::Version { node: 4, theirs: 9 }));
        assert_eq!(table.live_shards(), vec![2]);
    }

    #[test]
    fn work_is_taken_only_from_a_node_announced_in_that_role_with_this_fingerprint() {
        let table = Membership::new(42, Duration::from_secs(3));
        let beat = |node, gateway, shard, fingerprint| Heartbeat {
            version: CLUSTER_VERSION,
            node,
            roles: Roles { gateway, shard },
            fingerprint,
            state: NodeState::Live,
        };
        table.observe(&beat(1, true, false, 42)).unwrap();
        table.observe(&beat(2, false, true, 42)).unwrap();
        table.observe(&beat(3, true, true, 43)).unwrap_err();
        assert_eq!(table.standing(1, false), Standing::Member, "a gateway, as a gateway");
        assert_eq!(table.standing(1, true), Standing::Unknown, "a gateway never announced as a shard");
        assert_eq!(table.standing(2, true), Standing::Member);
        assert_eq!(table.standing(2, false), Standing::Unknown);
        assert_eq!(table.standing(3, false), Standing::Unknown, "another fingerprint is never recorded");
        assert_eq!(table.standing(9, false), Standing::Unknown, "never heard");
        // A `both` node's roles add up as it announces them.
        table.observe(&beat(1, true, true, 42)).unwrap();
        assert_eq!(table.standing(1, true), Standing::Member);
    }

    #[test]
    fn a_node_declared_dead_stays_fenced_and_is_never_live_again() {
        let table = Membership::new(42, Duration::from_millis(30));
        let beat = |node| Heartbeat {
            version: CLUSTER_VERSION,
            node,
            roles: Roles { gateway: false, shard: true },
            fingerprint: 42,
            state: NodeState::Live,
        };
        table.observe(&beat(1)).unwrap();
        table.observe(&beat(2)).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        table.observe(&beat(1)).unwrap();
        assert_eq!(table.expire(1), vec![2], "2 was silent for the timeout; 1 (this node) never expires");
        assert_eq!((table.standing(2, true), table.standing(1, true)), (Standing::Fenced, Standing::Member));
        // 2 was only paused: it comes back, and is told it is fenced instead of being taken back.
        assert_eq!(table.observe(&beat(2)), Ok(Seen::Fenced));
        assert_eq!(table.live_shards(), vec![1]);
        std::thread::sleep(Duration::from_millis(40));
        assert!(table.expire(1).is_empty(), "this node itself is never declared dead, however long it was away");
    }

    #[test]
    fn rendezvous_agrees_and_moves_only_the_lost_nodes_keys() {
        let nodes = [11, 22, 33, 44];
        let before: Vec<_> = (0..1000u64).map(|key| rendezvous(key, &nodes).unwrap()).collect();
        for node in nodes {
            let owned = before.iter().filter(|&&n| n == node).count();
            assert!((150..350).contains(&owned), "node {node} got {owned} of 1000 keys");
        }
        let survivors = [11, 22, 44];
        for (key, &owner) in before.iter().enumerate() {
            let after = rendezvous(key as u64, &survivors).unwrap();
            if owner != 33 {
                assert_eq!(after, owner, "key {key} moved although its node survived");
            }
        }
        assert_eq!(rendezvous(5, &[]), None);
    }
}

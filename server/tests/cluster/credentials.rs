//! Credentials in the cluster (docs/SECURITY.md): a broker of its own with docs/nats-cluster-permissions.conf (two
//! accounts, clusters `a` and `b`, each user limited to its own cluster's subjects), the demo's `--nats-user` and
//! `--nats-password-file` / `NATS_PASSWORD`, what the broker refuses, and what a shard and a gateway refuse from a
//! process that holds the credentials but never announced itself.

use std::process::{Command, Stdio};

use demo_protocol::proto::{CChat, CLogin, SChat, SLogin};
use demo_protocol::{GameProtocol, ServerPacket};
use futures_util::StreamExt;
use packet_cluster::envelope::{self, Op};
use packet_cluster::{CLUSTER_VERSION, Heartbeat, NodeState, Roles};
use packet_runtime::Protocol;
use test_support::demo::{enter, login};
use test_support::{expect, next, runtime, within};

use super::support::{Nats, Node, TempDir};

/// The operators' example, as shipped.
const CONFIG: &str = include_str!("../../../docs/nats-cluster-permissions.conf");
const PASSWORD_A: &str = "example-password-a";
const PASSWORD_B: &str = "example-password-b";

/// A password file readable by its owner only; the flags that use it.
struct Password {
    dir: TempDir,
}

impl Password {
    fn new(password: &str) -> Password {
        let dir = TempDir::new("secret");
        let file = dir.0.join("password");
        std::fs::write(&file, format!("{password}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        Password { dir }
    }

    fn path(&self) -> String {
        self.dir.0.join("password").display().to_string()
    }
}

/// A plain NATS client of `user`, its broker events (errors such as permission violations) on a channel.
async fn client_of(
    nats: &Nats,
    user: &str,
    password: &str,
    cluster: &str,
) -> (async_nats::Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::new()
        .user_and_password(user.into(), password.into())
        .custom_inbox_prefix(packet_cluster::subjects::inbox_prefix(cluster))
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(error) = event {
                    let _ = tx.send(error.to_string());
                }
            }
        })
        .connect(nats.url())
        .await
        .expect("a user of the example config connects");
    (client, rx)
}

/// The next broker error on `events`, which must be a permissions violation naming `subject`.
async fn violation(events: &mut tokio::sync::mpsc::UnboundedReceiver<String>, what: &str, subject: &str) {
    let error = within(what, events.recv()).await.expect("the event stream is open");
    let lower = error.to_lowercase();
    assert!(lower.contains("permissions violation") && error.contains(subject), "{what}: {error}");
}

/// One envelope from `sender`.
fn envelope(sender: u64, seq: u64, ops: &[Op<'_>]) -> bytes::Bytes {
    let mut buf = Vec::new();
    envelope::put_header(&mut buf, sender, seq);
    for op in ops {
        envelope::put_op(&mut buf, op);
    }
    buf.into()
}

/// The heartbeat a node of the demo's protocol would send.
fn heartbeat(node: u64, gateway: bool, shard: bool) -> bytes::Bytes {
    let beat = Heartbeat {
        version: CLUSTER_VERSION,
        node,
        roles: Roles { gateway, shard },
        fingerprint: GameProtocol::FINGERPRINT,
        state: NodeState::Live,
    };
    beat.encode().into()
}

fn user_a(password: &Password) -> Vec<String> {
    ["--nats-user", "cluster-a", "--nats-password-file", &password.path()].map(String::from).to_vec()
}

#[test]
fn a_cluster_with_its_own_credentials_serves_players_end_to_end() {
    let nats = Nats::start_configured(CONFIG);
    let password = Password::new(PASSWORD_A);
    let flags = user_a(&password);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let _shard = Node::start(&nats, "a", "shard", &flags);
    let gateway = Node::start(&nats, "a", "gateway", &flags);
    runtime().block_on(async {
        let (mut ann, ann_id) = login(gateway.gateway(), "ann").await;
        let (mut bob, _) = login(gateway.gateway(), "bob").await;
        enter(&mut ann, 1).await;
        enter(&mut bob, 1).await;
        let _spawn = next(&mut ann).await;
        ann.send(&CChat { msg: "hello over credentials".into() }).await.unwrap();
        for client in [&mut ann, &mut bob] {
            let chat = expect!(client, SChat);
            assert_eq!((chat.player_id, chat.msg.as_str()), (ann_id, "hello over credentials"));
        }
    });
}

#[test]
fn another_clusters_credentials_can_neither_read_nor_publish_this_ones_subjects() {
    let nats = Nats::start_configured(CONFIG);
    let password = Password::new(PASSWORD_A);
    let flags = user_a(&password);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut shard = Node::start(&nats, "a", "shard", &flags);
    runtime().block_on(async {
        let (intruder, mut events) = client_of(&nats, "cluster-b", PASSWORD_B, "b").await;
        // Reading: a's heartbeats, envelopes, replies.
        for subject in ["pk.a.>", "pk.a.inbox.>", "_INBOX.>", "$KV.pk_a.>"] {
            let _subscription = intruder.subscribe(subject).await.unwrap();
            intruder.flush().await.unwrap();
            violation(&mut events, "a subscription to a's subjects refused", subject).await;
        }
        // Writing: a forged envelope (a login) to a's shard, a forged heartbeat, a's KV bucket and its API.
        let session = 0xbbu64 << 40 | 1;
        let login_frame = test_support::encode(&CLogin { name: "intruder".into(), ..Default::default() });
        let forged = envelope(
            0xbb,
            1,
            &[Op::Open { session, addr: "forged" }, Op::Frame { session, seq: 1, frame: &login_frame }],
        );
        let targets = [
            packet_cluster::subjects::Subjects::new("a").shard(shard.id),
            packet_cluster::subjects::Subjects::new("a").heartbeat(),
            "$KV.pk_a.node-seq".to_owned(),
            "$JS.API.STREAM.INFO.KV_pk_a".to_owned(),
        ];
        for subject in targets {
            intruder.publish(subject.clone(), forged.clone()).await.unwrap();
            intruder.flush().await.unwrap();
            violation(&mut events, "a publish to a's subjects refused", &subject).await;
        }
    });
    // What the broker refused never reached the shard: nothing refused, nothing unannounced on its side.
    assert!(shard.terminate().success());
    let printed = shard.printed();
    let line = printed.iter().find(|l| l.starts_with("cluster: ")).expect("the cluster summary");
    assert!(line.contains(" 0 refused") && line.contains(" 0 from unannounced nodes dropped"), "{line}");
}

/// Runs the demo as a shard of cluster `a` with `flags` and `env` to its end; its status and stderr.
fn shard_exits(nats: &Nats, flags: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command.args(["--nats", &nats.url(), "--cluster", "a", "--role", "shard"]).args(flags);
    command.env_remove("NATS_PASSWORD").env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("the server binary runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn no_credentials_a_wrong_password_or_an_unusable_password_file_are_refused_with_a_clear_error() {
    let nats = Nats::start_configured(CONFIG);
    let refused = "refused this node's credentials (authorization violation)";

    let (status, stderr) = shard_exits(&nats, &[], &[]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains(refused), "no credentials: {stderr}");

    let wrong = "not-the-password-of-a";
    let (status, stderr) = shard_exits(&nats, &["--nats-user", "cluster-a"], &[("NATS_PASSWORD", wrong)]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains(refused), "a wrong password: {stderr}");
    assert!(!stderr.contains(wrong), "the password is never printed: {stderr}");

    // b's password for a's user: the same refusal.
    let (status, stderr) = shard_exits(&nats, &["--nats-user", "cluster-a"], &[("NATS_PASSWORD", PASSWORD_B)]);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains(refused) && !stderr.contains(PASSWORD_B), "{stderr}");

    // Configuration errors exit 2, naming what is missing; no secret on the command line.
    let (status, stderr) = shard_exits(&nats, &["--nats-user", "cluster-a"], &[]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("--nats-password-file FILE or the environment variable NATS_PASSWORD"), "{stderr}");
    let missing = std::env::temp_dir().join(format!("packet-no-such-password-{}", std::process::id()));
    let missing = missing.display().to_string();
    let (status, stderr) = shard_exits(&nats, &["--nats-user", "cluster-a", "--nats-password-file", &missing], &[]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("secret file {missing} cannot be read")), "{stderr}");

    // And the right one, from the environment, joins (exits 0 at once on SIGTERM: see the other tests for more).
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .args(["--nats", &nats.url(), "--cluster", "a", "--role", "shard", "--nats-user", "cluster-a"])
        .env("NATS_PASSWORD", PASSWORD_A)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    assert!(lines.by_ref().map_while(Result::ok).any(|line| line == "shard ready"), "the shard joins");
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(PASSWORD_A), "the password is not in the logs: {stderr}");
}

#[test]
fn a_shard_takes_no_work_from_a_node_that_never_announced_itself_but_trusts_one_that_did() {
    let nats = Nats::start_configured(CONFIG);
    let password = Password::new(PASSWORD_A);
    let flags = user_a(&password);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut shard = Node::start(&nats, "a", "shard", &flags);
    let subjects = packet_cluster::subjects::Subjects::new("a");
    // Node ids a real node never gets (they count up from 1).
    let (unannounced, announced) = (0xf0f0_u64, 0xa0a0_u64);
    runtime().block_on(async {
        // A process with a's credentials: the broker lets it publish anything on a's subjects.
        let (forger, _) = client_of(&nats, "cluster-a", PASSWORD_A, "a").await;
        let mut replies = forger.subscribe("pk.a.gw.*").await.unwrap();
        forger.flush().await.unwrap();
        let login_frame = |name: &str| test_support::encode(&CLogin { name: name.into(), ..Default::default() });
        let (forged, trusted) = (unannounced << 40 | 1, announced << 40 | 1);
        // The announced one's heartbeat first, then the unannounced one's login, then the announced one's: the
        // shard reads its subject in order, so the second reply proves it has dealt with the forged login.
        forger.publish(subjects.heartbeat(), heartbeat(announced, true, false)).await.unwrap();
        let frame = login_frame("forged");
        let ops = [Op::Open { session: forged, addr: "forged" }, Op::Frame { session: forged, seq: 1, frame: &frame }];
        forger.publish(subjects.shard(shard.id), envelope(unannounced, 1, &ops)).await.unwrap();
        let frame = login_frame("trusted");
        let ops =
            [Op::Open { session: trusted, addr: "trusted" }, Op::Frame { session: trusted, seq: 1, frame: &frame }];
        forger.publish(subjects.shard(shard.id), envelope(announced, 1, &ops)).await.unwrap();
        forger.flush().await.unwrap();
        // Every reply up to the trusted login's is for the announced node; none for the forged session.
        loop {
            let message = within("the announced node's login reply", replies.next()).await.unwrap();
            assert_eq!(message.subject.as_str(), subjects.gateway(announced), "nothing for the unannounced node");
            let mut parsed = envelope::Message::parse(&message.payload).unwrap();
            let mut logged_in = false;
            while let Some(op) = parsed.next() {
                if let Op::Send { frame, sessions } = op.unwrap() {
                    assert_eq!(sessions, vec![trusted]);
                    logged_in |= matches!(
                        test_support::demo::server_packets(frame).as_slice(),
                        [ServerPacket::SLogin(SLogin { success: true, .. })]
                    );
                }
            }
            if logged_in {
                break;
            }
        }
    });
    shard.kill();
    let stderr = shard.stderr();
    let dropped = format!("sender={unannounced:016x} role=\"gateway\"");
    assert_eq!(stderr.matches(&dropped).count(), 1, "one envelope dropped as unannounced, logged: {stderr}");
}

#[test]
fn a_gateway_takes_frames_only_from_announced_shards_and_counts_the_rest() {
    let nats = Nats::start_configured(CONFIG);
    let password = Password::new(PASSWORD_A);
    let flags = user_a(&password);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let _shard = Node::start(&nats, "a", "shard", &flags);
    let mut gateway = Node::start(&nats, "a", "gateway", &flags);
    let subjects = packet_cluster::subjects::Subjects::new("a");
    let (unannounced, announced) = (0xf1f1_u64, 0xa1a1_u64);
    runtime().block_on(async {
        let (mut player, player_id) = login(gateway.gateway(), "player").await;
        let (forger, _) = client_of(&nats, "cluster-a", PASSWORD_A, "a").await;
        let chat = |msg: &str| test_support::encode(&SChat { player_id: 0, msg: msg.into() });
        let forged = chat("from a node that never announced itself");
        let ops = [Op::Send { frame: &forged, sessions: vec![player_id] }];
        forger.publish(subjects.gateway(gateway.id), envelope(unannounced, 1, &ops)).await.unwrap();
        // A process holding the credentials that announces itself as a shard is trusted: its frames are relayed.
        forger.publish(subjects.heartbeat(), heartbeat(announced, false, true)).await.unwrap();
        let trusted = chat("from an announced shard");
        let ops = [Op::Send { frame: &trusted, sessions: vec![player_id] }];
        forger.publish(subjects.gateway(gateway.id), envelope(announced, 1, &ops)).await.unwrap();
        forger.flush().await.unwrap();
        // The gateway reads its subject in order: the first chat the player gets is the announced shard's.
        let got = expect!(&mut player, SChat);
        assert_eq!(got.msg, "from an announced shard");
    });
    assert!(gateway.terminate().success());
    let printed = gateway.printed();
    let line = printed.iter().find(|l| l.starts_with("cluster: ")).expect("the cluster summary");
    assert!(line.contains(" 1 from unannounced nodes dropped"), "{line}");
}

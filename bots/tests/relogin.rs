//! `bots --relogin` against a real cluster: a private `nats-server`, two shards and a gateway as separate processes,
//! the `bots` binary against the gateway; one shard is SIGKILLed mid-run. The bots of its rooms must be told ("game
//! server lost"), log in again (their rooms move to the surviving shard) and go on chatting; every other bot must
//! keep its session; the report must say so in numbers.
//!
//! The cluster nodes are the demo server's own code: this test binary runs `server::cli::main` (what the `server`
//! binary runs) when started with [`AS_SERVER`] set, and starts itself that way, since a test of this package has
//! the `bots` binary at hand (`CARGO_BIN_EXE_bots`) but not another package's. Hence `harness = false`: `main`
//! decides which of the two this process is.
//!
//! Needs `nats-server` on PATH and fails (never skips) without it. Every wait has a bound, stated in failure
//! timeouts of the cluster (1 s here): generous, since they only keep a broken run from hanging.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Set in the environment of the processes this test starts as cluster nodes.
const AS_SERVER: &str = "BOTS_RELOGIN_TEST_AS_SERVER";
/// The cluster's failure timeout: a shard not heard from for this long is dead.
const FAILURE_TIMEOUT: Duration = Duration::from_secs(1);
const CLIENTS: u64 = 40;
const ROOM_SIZE: u64 = 4;
const ROOMS: u64 = CLIENTS / ROOM_SIZE;
const TEST: &str = "a_killed_shards_bots_log_in_again_and_the_fleet_ends_whole";

fn main() -> ExitCode {
    if std::env::var_os(AS_SERVER).is_some() {
        return server::cli::main();
    }
    // The libtest flags cargo may pass are accepted; a name filter that does not match, or a `--skip` that does,
    // skips the test.
    let mut args = std::env::args().skip(1);
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => {
                println!("{TEST}: test");
                return ExitCode::SUCCESS;
            }
            "--skip" => skips.extend(args.next()),
            "--test-threads" | "--color" | "--format" | "--logfile" | "-Z" => {
                args.next();
            }
            flag if flag.starts_with('-') => {}
            _ => filters.push(arg),
        }
    }
    let filtered_out = !filters.is_empty() && !filters.iter().any(|f| TEST.contains(f.as_str()));
    if filtered_out || skips.iter().any(|s| TEST.contains(s.as_str())) {
        println!("running 0 tests");
        return ExitCode::SUCCESS;
    }
    println!("running 1 test");
    a_killed_shards_bots_log_in_again_and_the_fleet_ends_whole();
    println!("test {TEST} ... ok");
    ExitCode::SUCCESS
}

fn a_killed_shards_bots_log_in_again_and_the_fleet_ends_whole() {
    let nats = Nats::start();
    let cluster = format!("relogin-{}", std::process::id());
    let mut shards = [Node::start(&nats, &cluster, "shard"), Node::start(&nats, &cluster, "shard")];
    let gateway = Node::start(&nats, &cluster, "gateway");
    let mut bots = Bots::start(gateway.addr.expect("a gateway"));

    let running = bots.wait_for("every bot in its room and sending", 30, |s| s.connected == CLIENTS && s.sent > 0);
    // Who owns which room is in the cluster's KV bucket: the doomed shard is room 0's owner, and every bot in a room
    // it owns is to be kicked.
    let owners = room_owners(&nats, &cluster);
    let doomed = owners[0];
    let lost = owners.iter().filter(|&&owner| owner == doomed).count() as u64 * ROOM_SIZE;
    println!("killing shard {doomed:016x}: it owns {} of {ROOMS} rooms, {lost} bots", lost / ROOM_SIZE);
    shards.iter_mut().find(|s| s.id == doomed).expect("room 0's owner is one of the shards").kill();

    // Told within the failure timeout plus a heartbeat, back after the first backoff (100 ms) and a login.
    let back = bots.wait_for("the lost shard's bots back in their rooms", 20, |s| {
        s.kicked >= lost && s.relogins >= lost && s.connected == CLIENTS
    });
    // Still sending once back: two more messages per bot than when they were all back.
    bots.wait_for("the fleet going on with its load", 20, |s| s.sent >= back.sent + 2 * CLIENTS);
    let report = bots.interrupt();
    println!("report: {report}");

    let kicked: BTreeMap<String, u64> = serde_json::from_value(report["errors"]["kicked"].clone()).unwrap();
    assert_eq!(kicked, BTreeMap::from([("game server lost".to_owned(), lost)]), "the lost shard's bots were told");
    assert_eq!(report["disconnects"], lost, "no bot of the surviving shard lost its session");
    assert_eq!(report["relogins"], lost, "every kicked bot logged in again");
    let failed = report["relogin_failures"].as_u64().unwrap();
    assert_eq!(report["errors_total"], lost + failed, "nothing else failed: {}", report["errors"]);
    assert_eq!((report["connected"].as_u64(), report["connected_at_end"].as_u64()), (Some(CLIENTS), Some(CLIENTS)));
    let (sent, replies, abandoned) =
        (report["sent"].as_u64().unwrap(), report["replies"].as_u64().unwrap(), report["abandoned"].as_u64().unwrap());
    assert!(abandoned <= lost * 2, "at most the lost sessions' window (2 in flight each): {abandoned}");
    assert_eq!(replies + abandoned, sent, "every chat was answered but those in flight on the lost sessions");
    assert_eq!(report["interrupted"], true);
    assert!(running.sent < back.sent, "{running:?} then {back:?}");
}

/// The owner (`{:016x}` shard id) of each of the bots' rooms, as recorded in the cluster's KV bucket.
fn room_owners(nats: &Nats, cluster: &str) -> Vec<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.expect("the test connects to its broker");
        let kv = async_nats::jetstream::new(client).get_key_value(format!("pk_{cluster}")).await.expect("the bucket");
        let mut owners = Vec::new();
        for room in 0..ROOMS {
            let key = packet_cluster::subjects::owner_key(&format!("room.{room}"));
            let value = kv.get(&key).await.expect("reads the owner").expect("an owner was recorded");
            owners.push(u64::from_str_radix(std::str::from_utf8(&value).unwrap(), 16).unwrap());
        }
        owners
    })
}

/// The counts of one `--status-every` line.
#[derive(Debug, Clone, Copy, Default)]
struct Status {
    connected: u64,
    sent: u64,
    disconnects: u64,
    relogins: u64,
    kicked: u64,
}

impl Status {
    /// `status 2.5s: connected 38/40 | sent 120 | ... | kicked 3 (game server lost 3)`.
    fn parse(line: &str) -> Option<Status> {
        let (_, counts) = line.strip_prefix("status ")?.split_once(": ")?;
        let mut status = Status::default();
        for part in counts.split(" | ") {
            let mut words = part.split(' ');
            let (name, value) = (words.next()?, words.next()?);
            let number = |v: &str| v.parse::<u64>().ok();
            match name {
                "connected" => status.connected = number(value.split('/').next()?)?,
                "sent" => status.sent = number(value)?,
                "disconnects" => status.disconnects = number(value)?,
                "relogins" => status.relogins = number(value)?,
                "kicked" => status.kicked = number(value)?,
                _ => {}
            }
        }
        Some(status)
    }
}

/// The `bots` binary, chatting through the gateway with `--relogin`, a status line every 100 ms on stderr and the
/// JSON report on stdout.
struct Bots {
    child: Child,
    status: mpsc::Receiver<String>,
    stdout: Option<std::thread::JoinHandle<String>>,
    last: String,
}

impl Bots {
    fn start(gateway: SocketAddr) -> Bots {
        let timeout = format!("{}s", FAILURE_TIMEOUT.as_secs() * 10);
        let mut child = Command::new(env!("CARGO_BIN_EXE_bots"))
            .args(["--addr", &gateway.to_string(), "--name-prefix", "relogin"])
            .args(["--clients", &CLIENTS.to_string(), "--room-size", &ROOM_SIZE.to_string()])
            // Paced, and ended by the interrupt below rather than by a duration.
            .args(["--scenario", "chat", "--rate", "5", "--in-flight", "2", "--duration", "1h"])
            // A request's timeout far beyond the failure timeout: the lost shard's bots are kicked, not timed out.
            .args(["--timeout", &timeout, "--relogin", "--status-every", "100ms", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the bots binary starts");
        let stdout = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stdout).read_to_string(&mut text);
            text
        });
        let stderr = child.stderr.take().unwrap();
        let (tx, status) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Bots { child, status, stdout: Some(stdout), last: String::new() }
    }

    /// Reads status lines until one satisfies `done`, within `failure_timeouts` failure timeouts.
    fn wait_for(&mut self, what: &str, failure_timeouts: u32, done: impl Fn(&Status) -> bool) -> Status {
        let deadline = Instant::now() + FAILURE_TIMEOUT * failure_timeouts;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.status.recv_timeout(left) {
                Ok(line) => {
                    if let Some(status) = Status::parse(&line) {
                        self.last = line;
                        if done(&status) {
                            println!("{what}: {}", self.last);
                            return status;
                        }
                    } else {
                        println!("bots: {line}");
                    }
                }
                Err(_) => panic!(
                    "not {what} within {failure_timeouts} failure timeouts ({FAILURE_TIMEOUT:?} each); last status: {}",
                    self.last
                ),
            }
        }
    }

    /// Ctrl-C (SIGINT): the bots drain and print the report; returns it, parsed.
    fn interrupt(&mut self) -> serde_json::Value {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-INT", &pid]).status().expect("kill runs").success());
        // The drain waits for the replies in flight (at most the bots' timeout), then for quiet.
        let deadline = Instant::now() + FAILURE_TIMEOUT * 30;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the bots still run 30 failure timeouts after Ctrl-C");
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = self.stdout.take().unwrap().join().unwrap();
        assert!(status.success(), "bots exited with {status}: {stdout}");
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("the report is JSON ({e}): {stdout}"))
    }
}

impl Drop for Bots {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port()
}

/// A `nats-server -js` of this test's own, on free ports, its JetStream store in a temporary directory.
struct Nats {
    child: Child,
    port: u16,
    store: PathBuf,
}

impl Nats {
    fn start() -> Nats {
        let (port, monitor) = (free_port(), free_port());
        let store = std::env::temp_dir().join(format!("bots-relogin-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&store).unwrap();
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-m", &monitor.to_string()])
            .arg("-sd")
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start nats-server ({e}): this test needs it on PATH (`apt-get install nats-server`)")
            });
        let nats = Nats { child, port, store };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {port} within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        nats
    }

    fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// One cluster node: this binary as `server --nats ... --role ROLE`, killed when dropped.
struct Node {
    child: Child,
    /// The id it printed (`node {:016x}`).
    id: u64,
    /// The client address, for a gateway.
    addr: Option<SocketAddr>,
}

impl Node {
    fn start(nats: &Nats, cluster: &str, role: &str) -> Node {
        let failure_timeout = format!("{}s", FAILURE_TIMEOUT.as_secs());
        let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
        command
            .env(AS_SERVER, "1")
            .env("RUST_LOG", "warn")
            .args(["--nats", &nats.url(), "--cluster", cluster, "--role", role])
            .args(["--failure-timeout", &failure_timeout, "--workers", "1", "--rate-limit", "0"]);
        if role == "gateway" {
            command.args(["--addr", "127.0.0.1:0"]);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("a node starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let ready = if role == "gateway" { "listening on " } else { "shard ready" };
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            let mut id = 0;
            for line in lines.by_ref() {
                if let Some(hex) = line.strip_prefix("node ") {
                    id = u64::from_str_radix(hex, 16).unwrap_or(0);
                }
                if line.starts_with(ready) {
                    let addr = line.strip_prefix("listening on ").and_then(|a| a.parse().ok());
                    let _ = tx.send((id, addr));
                    break;
                }
            }
            // Keep draining so the node never blocks on a full pipe.
            for _ in lines {}
        });
        let mut node = Node { child, id: 0, addr: None };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((id, addr)) => (node.id, node.addr) = (id, addr),
            Err(_) => panic!("the {role} node was not ready within 30 s ({:?})", node.child.try_wait()),
        }
        node
    }

    /// SIGKILL: the process dies at once, telling nobody.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

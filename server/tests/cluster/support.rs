//! A private `nats-server` and the demo binary as cluster nodes, for the cluster suite.
//!
//! Every test starts its own broker (JetStream in a temporary directory, a free client port, a monitoring port for
//! the broker's own message counts) and its own processes, so tests neither share state with each other nor with
//! the machine's NATS on 4222. Processes are killed when their handle drops, also when a test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port()
}

/// A `nats-server` of this test's own.
pub(crate) struct Nats {
    child: Child,
    pub(crate) port: u16,
    monitor: u16,
    _store: TempDir,
    /// The routing flags of a broker in a NATS cluster (empty for a lone one).
    cluster_args: Vec<String>,
}

impl Nats {
    /// Starts `nats-server -js` on free ports and waits until it takes connections. Fails (never skips) with what
    /// to install when the binary is missing.
    pub(crate) fn start() -> Nats {
        let port = free_port();
        let monitor = free_port();
        let store = TempDir::new("nats");
        let child = Nats::spawn(port, monitor, &store, &[]);
        let nats = Nats { child, port, monitor, _store: store, cluster_args: Vec::new() };
        nats.wait_listening();
        nats
    }

    /// [`start`](Self::start) with the configuration file `config` (accounts, users, permissions), written into
    /// the broker's own directory; the ports and JetStream directory still come from the command line.
    pub(crate) fn start_configured(config: &str) -> Nats {
        let (port, monitor, store) = (free_port(), free_port(), TempDir::new("nats"));
        let file = store.0.join("nats.conf");
        std::fs::write(&file, config).unwrap();
        let cluster_args = vec!["-c".to_owned(), file.display().to_string()];
        let child = Nats::spawn(port, monitor, &store, &cluster_args);
        let nats = Nats { child, port, monitor, _store: store, cluster_args };
        nats.wait_listening();
        nats
    }

    /// `n` brokers routed into one NATS cluster (JetStream clustered, so the cluster's KV bucket gets three
    /// replicas), each on its own ports.
    pub(crate) fn start_cluster(n: usize) -> Vec<Nats> {
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let route_urls = routes.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        let name = format!("pk{}", free_port());
        let brokers: Vec<Nats> = routes
            .iter()
            .enumerate()
            .map(|(i, route)| {
                let (port, monitor, store) = (free_port(), free_port(), TempDir::new("nats"));
                let cluster_args = vec![
                    "--server_name".to_owned(),
                    format!("{name}-{i}"),
                    "--cluster_name".to_owned(),
                    name.clone(),
                    "--cluster".to_owned(),
                    format!("nats://127.0.0.1:{route}"),
                    "--routes".to_owned(),
                    route_urls.clone(),
                ];
                let child = Nats::spawn(port, monitor, &store, &cluster_args);
                Nats { child, port, monitor, _store: store, cluster_args }
            })
            .collect();
        for broker in &brokers {
            broker.wait_listening();
        }
        brokers
    }

    fn spawn(port: u16, monitor: u16, store: &TempDir, cluster_args: &[String]) -> Child {
        Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-m", &monitor.to_string()])
            .args(cluster_args)
            .arg("-sd")
            .arg(&store.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start nats-server ({e}): the cluster tests need it on PATH (`apt-get install nats-server`)"
                )
            })
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || TcpStream::connect(("127.0.0.1", self.monitor)).is_err()
        {
            assert!(Instant::now() < deadline, "nats-server did not listen on {} within 20 s", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the broker again (after [`kill`](Self::kill)) on the same ports and JetStream directory.
    pub(crate) fn restart(&mut self) {
        self.child = Nats::spawn(self.port, self.monitor, &self._store, &self.cluster_args);
        self.wait_listening();
    }

    /// SIGKILLs the broker for good.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Client connections the broker holds now (`num_connections` of its `/connz`).
    pub(crate) fn connections(&self) -> u64 {
        self.monitor_number("/connz", "num_connections")
    }

    pub(crate) fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Messages published into the broker so far (`in_msgs` of its `/varz`): every NATS message any node sent.
    pub(crate) fn messages_in(&self) -> u64 {
        self.monitor_number("/varz", "in_msgs")
    }

    fn monitor_number(&self, path: &str, field: &str) -> u64 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.monitor)).expect("monitoring port");
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).unwrap();
        let key = format!("\"{field}\":");
        let at = body.find(&key).unwrap_or_else(|| panic!("{field} in {path}")) + key.len();
        body[at..].trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().expect("a count")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("packet-{what}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One demo server process in a cluster.
pub(crate) struct Node {
    child: Child,
    /// The gateway's address, for gateways.
    pub(crate) addr: Option<SocketAddr>,
    /// Its `--web` address, if it printed one (`web listening on ADDR`, right after `listening on`).
    pub(crate) web: Option<SocketAddr>,
    /// The node id it printed (`node {:016x}`).
    pub(crate) id: u64,
    /// The metrics endpoint, for nodes started with `--metrics-addr` (`metrics listening on ADDR`).
    pub(crate) metrics: Option<SocketAddr>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// Every line the node printed to stdout after it was ready (its shutdown summary, for one).
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Extra flags every node of the suite gets: 1 IO thread (the machine has 2 cores), no rate limit.
const COMMON: &[&str] = &["--workers", "1", "--rate-limit", "0"];

impl Node {
    /// Starts `server --nats URL --cluster NAME --role ROLE` and waits for it to say it is ready (`shard ready`
    /// and/or `listening on ADDR`).
    pub(crate) fn start(nats: &Nats, cluster: &str, role: &str, extra: &[&str]) -> Node {
        Node::start_on(&nats.url(), cluster, role, extra)
    }

    /// [`start`](Self::start) on the NATS servers `urls` (comma-separated).
    pub(crate) fn start_on(urls: &str, cluster: &str, role: &str, extra: &[&str]) -> Node {
        let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
        command.args(["--nats", urls, "--cluster", cluster, "--role", role]).args(COMMON).args(extra);
        if role != "shard" {
            command.args(["--addr", "127.0.0.1:0"]);
        }
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let wants_shard = role != "gateway";
        let wants_addr = role != "shard";
        let extra_has_web = extra.contains(&"--web");
        let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let later = std::sync::Arc::clone(&printed);
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let (mut shard, mut addr, mut id, mut metrics) = (!wants_shard, None, 0, None);
            let wants_web = extra_has_web;
            while let Some(Ok(line)) = lines.next() {
                shard |= line == "shard ready";
                if let Some(hex) = line.strip_prefix("node ") {
                    id = u64::from_str_radix(hex, 16).unwrap_or(0);
                }
                if let Some(bound) = line.strip_prefix("metrics listening on ") {
                    metrics = bound.parse::<SocketAddr>().ok();
                }
                if let Some(bound) = line.strip_prefix("listening on ") {
                    addr = bound.parse::<SocketAddr>().ok();
                }
                let web = line.strip_prefix("web listening on ").and_then(|w| w.parse::<SocketAddr>().ok());
                if shard && (addr.is_some() || !wants_addr) && (web.is_some() || !wants_web) {
                    let _ = tx.send((addr, id, web, metrics));
                    break;
                }
            }
            // Keep draining so the child never blocks on a full pipe.
            for line in lines.map_while(Result::ok) {
                later.lock().unwrap().push(line);
            }
        });
        let mut node =
            Node { child, addr: None, web: None, id: 0, metrics: None, stderr: Some(stderr), stdout: printed };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((addr, id, web, metrics)) => {
                node.addr = addr;
                node.id = id;
                node.web = web;
                node.metrics = metrics;
            }
            Err(_) => {
                let _ = node.child.kill();
                let status = node.child.wait();
                let stderr = node.stderr.take().unwrap().join().unwrap_or_default();
                panic!("{role} node not ready within 30 s ({status:?}); stderr:\n{stderr}");
            }
        }
        node
    }

    /// SIGKILL: the process dies at once, telling nobody.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (at most 30 s) for the exit status.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(30), "SIGTERM")
    }

    /// Sends `kill -<name>` (TERM, STOP, CONT, ...).
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.expect("kill runs").success(), "kill -{name} failed");
    }

    /// Waits at most `limit` for the process to exit, failing with `after` in the message.
    pub(crate) fn wait_exit(&mut self, limit: Duration, after: &str) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running {limit:?} after {after}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the node printed to stdout after it was ready, so far.
    pub(crate) fn printed(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// What the node wrote to stderr (call after it exited).
    pub(crate) fn stderr(&mut self) -> String {
        self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    }

    /// The gateway's client address.
    pub(crate) fn gateway(&self) -> SocketAddr {
        self.addr.expect("a gateway node")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the server binary with `args` to its end (at most 30 s); its status and stderr.
pub(crate) fn run_to_end(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return (status, stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server {args:?} still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A cluster name of this test's own.
pub(crate) fn cluster_name(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

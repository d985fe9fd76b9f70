//! TLS to the broker (`--nats-tls-ca`): a cluster whose `nats-server` requires TLS works when its nodes trust the CA
//! that signed the broker's certificate; a node that trusts another CA is refused and exits with a clear error.

use demo_protocol::proto::CChat;
use test_support::demo::{enter, login};
use test_support::tls::TestCa;
use test_support::{expect, runtime};

use crate::support::*;

#[test]
fn a_cluster_talks_to_a_tls_broker_it_trusts_and_refuses_one_it_does_not() {
    let ca = TestCa::new("nats");
    let files = ca.server_files("nats");
    let config =
        format!("tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n", files.cert.display(), files.key.display());
    let nats = Nats::start_configured(&config);
    // The certificate names `localhost`: the URL does too, so the name is checked.
    let url = format!("tls://localhost:{}", nats.port);
    let name = cluster_name("nats-tls");
    let ca_file = ca.ca_file();
    let trusting = ["--nats-tls-ca", ca_file.to_str().unwrap()];
    let _shard = Node::start_on(&url, &name, "shard", &trusting);
    let gateway = Node::start_on(&url, &name, "gateway", &trusting);
    runtime().block_on(async {
        let (mut ann, id) = login(gateway.gateway(), "tls-ann").await;
        enter(&mut ann, 1).await;
        ann.send(&CChat { msg: "over a TLS broker".into() }).await.unwrap();
        assert_eq!(expect!(&mut ann, SChat).player_id, id);
    });

    let stranger = TestCa::new("stranger");
    let stranger_ca = stranger.ca_file();
    let (status, stderr) = run_to_end(&[
        "--nats",
        &url,
        "--cluster",
        &name,
        "--role",
        "shard",
        "--nats-tls-ca",
        stranger_ca.to_str().unwrap(),
    ]);
    assert!(!status.success(), "a node that does not trust the broker's certificate does not join: {stderr}");
    assert!(stderr.contains("cannot connect to NATS"), "{stderr}");
    // Nor does one that speaks clear text to it.
    let (status, stderr) =
        run_to_end(&["--nats", &format!("nats://127.0.0.1:{}", nats.port), "--cluster", &name, "--role", "shard"]);
    assert!(!status.success(), "{stderr}");
}

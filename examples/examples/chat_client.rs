//! An interactive terminal chat client for the demo game server.
//!
//! ```text
//! cargo run -p server --release                      # the demo server, on 127.0.0.1:7777
//! cargo run -p examples --example chat_client -- --addr 127.0.0.1:7777 --name alice --room 1 \
//!     [--handshake] [--auth-secret-file FILE]
//! ```
//!
//! Logs in, enters the room, then sends every line typed as a chat message and prints what the server sends:
//! chats, players spawning and leaving, a kick. `/quit` (or end of input) leaves.

use std::collections::HashMap;
use std::net::SocketAddr;

use clap::Parser;
use demo_protocol::proto;
use demo_protocol::{GameProtocol, ServerPacket};
use packet_runtime::{Client, ClientError};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A terminal chat client for the demo game server.
#[derive(Debug, Parser)]
struct Args {
    /// The demo server's address.
    #[arg(long, default_value = "127.0.0.1:7777")]
    addr: SocketAddr,
    /// The name to log in with.
    #[arg(long, default_value = "guest")]
    name: String,
    /// The room to enter.
    #[arg(long, default_value_t = 1)]
    room: u32,
    /// Open with the version handshake (required by a server run with `--handshake`): a server of another build
    /// is refused before anything else is sent, naming both fingerprints.
    #[arg(long)]
    handshake: bool,
    /// Sign the login with the secret in this file, for a server run with `--auth-secret-file` and the same file.
    #[arg(long)]
    auth_secret_file: Option<std::path::PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut client = Client::<GameProtocol>::connect(args.addr).await?;
    if args.handshake {
        let server = client.handshake(concat!("chat_client ", env!("CARGO_PKG_VERSION"))).await?;
        println!("handshake: the server is {:?}, protocol {:016x}", server.version, server.fingerprint);
    }
    let (mut reader, mut writer) = client.into_split();

    let token = match &args.auth_secret_file {
        Some(path) => {
            demo_protocol::token::TokenKey::from_file(path)?.mint(&args.name, std::time::Duration::from_secs(3600))
        }
        None => String::new(),
    };
    writer.send(&proto::CLogin { name: args.name.clone(), token }).await?;
    writer.send(&proto::CEnterRoom { room_id: args.room }).await?;
    println!("connected to {} as {}; type a message and press enter, /quit to leave", args.addr, args.name);

    // Player names learned from S_ENTER_ROOM and S_SPAWN, to print chats by name.
    let mut names: HashMap<u64, String> = HashMap::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            // Both futures are cancel-safe: `next_line` and `recv` keep partial input buffered across polls.
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                let line = line.trim();
                if line == "/quit" {
                    break;
                }
                if !line.is_empty() {
                    writer.send(&proto::CChat { msg: line.to_owned() }).await?;
                }
            }
            packet = reader.recv() => match packet {
                Ok(packet) => {
                    if !show(packet, &args.name, &mut names) {
                        break;
                    }
                }
                Err(ClientError::Closed) => {
                    println!("* the server closed the connection");
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    writer.shutdown().await?;
    Ok(())
}

/// Prints one packet. Returns `false` once the session is over (kicked).
fn show(packet: ServerPacket, me: &str, names: &mut HashMap<u64, String>) -> bool {
    match packet {
        ServerPacket::SLogin(login) if login.success => {
            names.insert(login.player_id, me.to_owned());
            println!("* logged in as player {}", login.player_id);
        }
        ServerPacket::SLogin(login) => println!("* login refused: {}", shown(&login.reason)),
        ServerPacket::SEnterRoom(room) if room.already_in_room => println!("* already in room {}", room.room_id),
        ServerPacket::SEnterRoom(room) if room.success => {
            // A long listing comes in pages; each is printed as it arrives, the last one says `more: false`.
            remember(names, &room.players);
            println!("* in room {}: {}", room.room_id, list(&room.players));
            if !room.more {
                println!("* {} other(s) here", room.total);
            }
        }
        ServerPacket::SEnterRoom(_) => println!("* could not enter the room"),
        ServerPacket::SSpawn(spawn) => {
            remember(names, &spawn.players);
            println!("* joined: {}", list(&spawn.players));
        }
        ServerPacket::SDespawn(despawn) => {
            for id in despawn.player_ids {
                let name = names.remove(&id).unwrap_or_else(|| format!("#{id}"));
                println!("* left: {name}");
            }
        }
        ServerPacket::SChat(chat) => match names.get(&chat.player_id) {
            Some(name) => println!("[{}] {}", shown(name), shown(&chat.msg)),
            None => println!("[#{}] {}", chat.player_id, shown(&chat.msg)),
        },
        ServerPacket::SChatRefused(refused) => println!("* not sent: {}", shown(&refused.reason)),
        ServerPacket::SWhisper(whisper) => match names.get(&whisper.from_player_id) {
            Some(name) => println!("<{}> (whisper) {}", shown(name), shown(&whisper.msg)),
            None => println!("<#{}> (whisper) {}", whisper.from_player_id, shown(&whisper.msg)),
        },
        ServerPacket::SKick(kick) => {
            println!("* kicked: {}", shown(&kick.reason));
            return false;
        }
        // Movement, pongs and echoes are not part of a chat.
        ServerPacket::SMove(_) | ServerPacket::SPong(_) | ServerPacket::SEcho(_) => {}
    }
    true
}

fn remember(names: &mut HashMap<u64, String>, players: &[proto::PlayerInfo]) {
    for player in players {
        names.insert(player.player_id, player.name.clone());
    }
}

fn list(players: &[proto::PlayerInfo]) -> String {
    if players.is_empty() {
        return "nobody".to_owned();
    }
    players.iter().map(|p| shown(&p.name)).collect::<Vec<_>>().join(", ")
}

/// Text from the network as it may be printed to a terminal: control characters (escape sequences, carriage
/// returns) escaped, so that another player's chat line cannot drive the terminal.
fn shown(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

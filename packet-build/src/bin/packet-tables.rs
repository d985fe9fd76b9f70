//! Writes a `.proto`'s packet table for clients in other languages.
//!
//! ```text
//! packet-tables PROTO [--include DIR]... [--protocol NAME] [--namespace NS]
//!               [--ts FILE [--ts-messages MODULE]] [--cs FILE] [--cpp FILE]
//! ```
//!
//! `--ts-messages` is the module protobuf-es generated the messages into, as imported from the table's file
//! (default `./<stem>_pb.js`). The demo's tables: `clients/build-tables.sh`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut args = args.into_iter();
    let mut proto = None;
    let (mut includes, mut protocol, mut namespace) = (Vec::new(), None, None);
    let (mut ts, mut ts_messages, mut cs, mut cpp) = (None, None, None, None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--include" => includes.push(PathBuf::from(value()?)),
            "--protocol" => protocol = Some(value()?),
            "--namespace" => namespace = Some(value()?),
            "--ts" => ts = Some(PathBuf::from(value()?)),
            "--ts-messages" => ts_messages = Some(value()?),
            "--cs" => cs = Some(PathBuf::from(value()?)),
            "--cpp" => cpp = Some(PathBuf::from(value()?)),
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            file => proto = Some(PathBuf::from(file)),
        }
    }
    let proto = proto.ok_or("usage: packet-tables PROTO [--include DIR] [--ts FILE] [--cs FILE] [--cpp FILE]")?;
    let stem = proto.file_stem().and_then(|s| s.to_str()).unwrap_or("packets").to_owned();
    let mut builder = packet_build::ProtoPackets::new(&proto).rerun_if_changed(false);
    for dir in includes {
        builder = builder.include(dir);
    }
    if let Some(protocol) = protocol {
        builder = builder.protocol(protocol);
    }
    let table = builder.client_table().map_err(|e| e.to_string())?;
    let write =
        |path: &PathBuf, text: String| std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()));
    if let Some(path) = &ts {
        write(path, table.typescript(&ts_messages.unwrap_or_else(|| format!("./{stem}_pb.js"))))?;
    }
    if let Some(path) = &cs {
        write(path, table.csharp(namespace.as_deref()))?;
    }
    if let Some(path) = &cpp {
        write(path, table.cpp(namespace.as_deref()))?;
    }
    Ok(())
}

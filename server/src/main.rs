//! The demo game server. Everything it does is in [`server::cli`], so the benchmark can run the same code.

fn main() -> std::process::ExitCode {
    server::cli::main()
}

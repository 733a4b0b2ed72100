//! The `arcan` binary: server and CLI.

fn main() -> std::process::ExitCode {
    arcan::cli::main()
}

//! The `arcan` binary: server and CLI.

/// mimalloc instead of glibc's malloc: under load the server allocates and frees small
/// buffers on two runtime threads and the SQLite writer, and glibc's arenas (locking,
/// consolidation) took about an eighth of its CPU in a profile of KV reads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    arcan_cli::main()
}

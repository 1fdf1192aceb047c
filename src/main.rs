//! The `svamlgate` binary: parses the command line and hands over to [`svamlgate::cli`].

/// mimalloc instead of the system allocator: the reply path allocates many small, short-lived
/// objects from several threads, where glibc's allocator spent a fifth of the CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    svamlgate::cli::main()
}

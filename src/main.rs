//! The `svamlgate` binary: parses the command line and hands over to [`svamlgate::cli`].

fn main() -> std::process::ExitCode {
    svamlgate::cli::main()
}

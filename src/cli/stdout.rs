//! What the commands print goes through here. When the reader has gone away (`svamlgate validate
//! --json FILE | head -c 300`), the rest of the output is dropped quietly and the command ends with
//! its own exit code (`validate` still says 1 for an invalid document): a closed pipe is the
//! reader's choice, not an error. `println!` would panic there ("failed printing to stdout: Broken
//! pipe"). Any other write error is reported and exits 2.

use std::io::{ErrorKind, Write};

/// Writes `args` to the locked standard output and flushes it; nothing when the reader has gone.
pub(crate) fn write(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("svamlgate: writing to standard output: {e}");
            std::process::exit(2)
        }
    }
}

/// `print!` that is quiet on a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::stdout::write(format_args!($($arg)*))
    };
}

/// `println!` that is quiet on a closed pipe.
macro_rules! outln {
    () => {
        $crate::cli::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};

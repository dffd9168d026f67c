//! Writing to stdout as a Unix tool does: when the reader goes away (`overseer jobs get X |
//! head -1`), the process ends quietly with status 0 instead of panicking on the closed pipe
//! (as `println!` does) — there is no one left to tell.

use std::io::Write;

/// Writes `text` to stdout and flushes it; ends the process with 0 when stdout is a closed
/// pipe, with 1 (after saying why on stderr) when writing fails otherwise.
pub fn print(text: impl std::fmt::Display) {
    let mut stdout = std::io::stdout().lock();
    let written = write!(stdout, "{text}").and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("overseer: writing to stdout: {e}");
        std::process::exit(1);
    }
}

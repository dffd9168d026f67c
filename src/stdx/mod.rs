//! Small helpers that could be in std: field problems, durations, backoff, panic payloads,
//! secret names and scrubbing. **Invariant:** nothing here imports anything of the project, so any
//! floor may use it.

pub mod backoff;
pub mod clock;
pub mod duration;
pub mod json_diff;
pub mod names;
pub mod panic;
pub mod problems;
pub mod secrets;
pub mod stdout;
pub mod template;

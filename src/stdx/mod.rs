//! Small helpers that could be in std: field problems, durations, panic payloads, secret
//! names and scrubbing. **Invariant:** nothing here imports anything of the project, so any
//! floor may use it.

pub mod duration;
pub mod panic;
pub mod problems;
pub mod secrets;

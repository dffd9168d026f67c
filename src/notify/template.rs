//! `notify` jobs' templates: the project's one template language (`stdx::template`), reading
//! `job`, `run` and `now`.

pub use crate::stdx::template::{Template, TemplateError, NOTIFY_ROOTS as ROOTS};
